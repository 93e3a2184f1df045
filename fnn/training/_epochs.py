"""The epochs of :func:`fnn.training.fit_batches`: where each epoch's batches come from,
how its chunks are fed to the device, and the programs around them."""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks
from fnn.training._loop import LoopConfig, all_finite
from fnn.training._placement import Placement
from fnn.training._results import FitResult
from fnn.diagnostics import layer_grad_norms
from fnn.training._score import predict, score
from fnn.training._start import init_opt_state

__all__ = ["EpochSource", "run_epoch", "epoch_end", "start_carry", "copy_carry"]


class EpochSource:
    """The batches of each epoch: ``batches(epoch)``, ``iter(batches)``, or the next
    ``steps`` of a one-shot iterator."""

    def __init__(self, fn: str, batches: Any, steps: int | None):
        self.fn, self.batches, self.steps = fn, batches, steps
        self.function = callable(batches) and not hasattr(batches, "__iter__")
        self.one_shot = False
        if not self.function:
            try:
                self.one_shot = iter(batches) is batches
            except TypeError:
                _checks.fail(fn, "batches", "be an iterable of (x, y) batches or a function "
                             "batches(epoch) returning one", _checks.describe(batches), TypeError)

    def epoch(self, epoch: int) -> tuple[Iterator, int | None]:
        """The iterator of ``epoch``'s batches and their number when known."""
        source = self.batches(epoch) if self.function else self.batches
        try:
            stream = iter(source)
        except TypeError:
            _checks.fail(self.fn, "batches", f"return an iterable of (x, y) batches (batches({epoch}))",
                         _checks.describe(source), TypeError)
        try:
            length = len(source) if not self.one_shot else None
        except TypeError:
            length = None
        if self.steps is not None:
            stream = itertools.islice(stream, self.steps)
            length = self.steps if length is None else min(length, self.steps)
        return stream, length

    def empty(self, epoch: int) -> None:
        _checks.fail(self.fn, "batches", f"yield at least one batch in every epoch (epoch {epoch}: none; a "
                     "one-shot iterator is used up after one pass unless steps= is given)", "none")


def run_epoch(runners: dict, carry: tuple, chunks: Iterator, key: jax.Array, step: int,
              place: Placement, epoch: int) -> tuple:
    """Train on every chunk of ``chunks``; ``(carry, total, batches, examples, losses, head)``
    (``head``: the first chunk's ``(xs, ys)`` on the device, None without chunks).

    Double buffering through asynchronous dispatch: chunk ``i`` is dispatched, then
    chunk ``i + 1`` is stacked on the host and its transfer enqueued, and only then does
    the host wait, for chunk ``i - 1``: the device always has the next chunk's data
    arriving while it trains, and at most three chunks are alive. On several processes
    every chunk (and the epoch's end) is first compared across processes
    (:meth:`Placement.agree`), which waits for the chunk training.
    """
    fn = "parallel.fit_batches"

    def put(chunk, index):
        arg = f"the number and shapes of batches (epoch {epoch}, chunk {index})"
        if chunk is None:
            place.agree(fn, {arg: ("end", f"the end of the epoch after {count} batches")})
            return None
        # Agreed before the transfer: a batch that needs gathering makes a collective call.
        place.agree(fn, {arg: ((chunk.count, np.shape(chunk.xs), np.shape(chunk.ys)),
                               f"{chunk.count} batches of x {np.shape(chunk.xs)[1:]}")})
        return place.chunk(chunk.xs), place.chunk(chunk.ys), chunk

    total = place.tree(jnp.zeros((), jnp.float32))
    count = examples = index = 0
    losses: list = []
    ahead, previous = put(next(chunks, None), index), None
    head = None if ahead is None else ahead[:2]
    while ahead is not None:
        xs, ys, chunk = ahead
        carry, total, chunk_losses = runners[chunk.padded](carry, total, key, np.int32(step + count), xs, ys,
                                                           np.int32(chunk.count))
        count += chunk.count
        examples += chunk.count * xs.shape[1]
        index += 1
        losses.append((chunk_losses, chunk.count))
        ahead = put(next(chunks, None), index)
        if previous is not None:
            previous.block_until_ready()
        previous = chunk_losses
    return carry, total, count, examples, losses, head


@functools.lru_cache(maxsize=64)
def epoch_end(cfg: LoopConfig, has_eval: bool) -> Callable:
    """``end(carry, total, examples, x_eval, y_eval, head) -> (train_loss, finite, scores)``,
    jitted: the epoch's mean example loss, whether it and the params and state are
    finite, and the scores on the evaluation data; with ``cfg.grad_norms`` also
    ``scores["grad_norms"]``, per layer, on the epoch's first batch ``head[0][0]`` (as
    ``fit``: at the epoch's final params, a general model in inference mode)."""
    def end(carry, total, examples, x_eval, y_eval, head):
        params, _, model_state = carry
        train_loss = total / examples
        finite = jnp.isfinite(train_loss) & all_finite((params, model_state), 0)
        scores = (score(cfg.model.apply, cfg.model.general, cfg.loss, cfg.metrics, params, model_state,
                        x_eval, y_eval) if has_eval else {})
        if cfg.grad_norms:
            xb, yb = head[0][0], head[1][0]
            grads = jax.grad(lambda p: cfg.loss(predict(cfg.model.apply, cfg.model.general, p, model_state, xb),
                                                yb))(params)
            scores = {**scores, "grad_norms": layer_grad_norms(grads)}
        return train_loss, finite, scores
    return jax.jit(end)


@functools.lru_cache(maxsize=64)
def start_carry(cfg: LoopConfig) -> Callable:
    """``start(params, opt_state | None, model_state) -> carry``, jitted: copies (the chunks
    donate the carry, never the caller's arrays), the optimizer state made if None."""
    def start(params, opt_state, model_state):
        if opt_state is None:
            opt_state = init_opt_state(cfg, params, None)
        return jax.tree.map(jnp.copy, (params, opt_state, model_state))
    return jax.jit(start)


copy_carry = jax.jit(lambda carry: jax.tree.map(jnp.copy, carry))
