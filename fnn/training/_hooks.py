"""``on_epoch`` hooks called from inside the compiled loop.

At the end of each epoch the loop calls the host with ``io_callback`` (ordered): the
epoch and its history values go to the host, the hook runs there and its answer
(``True``: stop) comes back into the ``while_loop``'s condition. The whole training
stays one call of the compiled program. The program does not hold the hook itself (a new
function each ``fit`` would mean a new program): it passes a traced token, and the host
looks the hook up in a table of the runs in progress. A hook's exception is kept on the
host and stops the loop; the driver raises it once the program has returned.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

__all__ = ["HookRun", "call_hook"]

_RUNS: dict[int, "HookRun"] = {}
_TOKENS = itertools.count()
_LOCK = threading.Lock()


class HookRun:
    """One run's hook on the host: ``with HookRun(hook, names) as run:`` registers it
    under ``run.token`` (what the compiled loop passes back) until the block ends.

    ``names``: the history entries in the order ``logs`` shows them. ``stopped``: the
    hook returned ``True``; ``error``: what it raised (the loop stopped after that epoch).
    """

    def __init__(self, hook: Callable | None, names: list):
        self.hook, self.names = hook, list(names)
        self.stopped = False
        self.error: BaseException | None = None
        with _LOCK:
            self.token = next(_TOKENS) % (1 << 31)

    def __enter__(self) -> "HookRun":
        with _LOCK:
            _RUNS[self.token] = self
        return self

    def __exit__(self, *exc: Any) -> None:
        with _LOCK:
            _RUNS.pop(self.token, None)

    def call(self, epoch: np.ndarray, values: dict) -> np.bool_:
        """The hook on epoch ``epoch``'s ``values``: floats for scalars, arrays otherwise
        (the same ``logs`` as the per-epoch driver reads from the history)."""
        if self.stopped or self.error is not None:   # already told the loop to stop
            return np.bool_(True)
        # Copies: the callback's buffers are the program's, reused once it returns.
        logs = {k: float(v) if np.ndim(v) == 0 else np.array(v) for k, v in
                ((k, values[k]) for k in self.names)}
        try:
            self.stopped = self.hook is not None and self.hook(int(epoch), logs) is True
        except BaseException as error:    # raised by the driver after the program returns
            self.error = error
        return np.bool_(self.stopped or self.error is not None)

    def raise_error(self) -> None:
        """Raise what the hook raised, if anything."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def _dispatch(token: np.ndarray, epoch: np.ndarray, values: dict) -> np.bool_:
    run = _RUNS.get(int(token))
    return np.bool_(True) if run is None else run.call(epoch, values)


def call_hook(token: jax.Array, epoch: jax.Array, values: dict) -> jax.Array:
    """Inside the loop: the hook of run ``token`` on ``(epoch, values)``; True to stop."""
    return io_callback(_dispatch, jax.ShapeDtypeStruct((), jnp.bool_), token, epoch, values, ordered=True)
