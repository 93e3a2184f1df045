"""The host driver: runs the compiled loop in one call or in chunks, saves checkpoints,
shows progress, rebuilds the last good state after a failure, and stops on Ctrl-C."""

from __future__ import annotations

import functools
import threading
import time
import warnings
from typing import Any, Callable, Mapping, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from fnn import checkpoint as _checkpoint
from fnn import _multihost
from fnn.training import _progress
from fnn.training import _rollback
from fnn.training._arguments import Prepared
from fnn.training._hooks import HookRun
from fnn.training._loop import LoopState, build_runner, summary
from fnn.training._resume import check_resume_needs, checkpoint_tree, resume_needs
from fnn.training._results import FitResult, NonFiniteReport
from fnn.training._start import build_start, history_shapes, host_start, with_arrays

__all__ = ["run", "Interrupted"]

# Aim for a progress update about this often (seconds) when the bar is on.
PROGRESS_INTERVAL_S = 0.25
# Poll for a call's result this long (seconds) before handing the wait to a thread.
SPIN_S = 2e-3
# The main thread wakes at least this often (seconds) while it waits for the waiting thread.
WAKE_S = 0.1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fnn.fit`: ``result`` is the last consistent state reached.

    A :class:`FitResult` of the epochs completed before the interrupt (resumable with
    ``fit(..., initial=error.result)``), or None when nothing consistent was left (the
    run donated its starting state and no chunk had finished). It is a
    ``KeyboardInterrupt``, so code that does not look for it stops as usual.
    """

    def __init__(self, result: FitResult | None):
        super().__init__("training interrupted")
        self.result = result


def _wait(value: jax.Array, spin_s: float = SPIN_S) -> np.ndarray:
    """``value`` on the host, as soon as it is ready, with Ctrl-C handled at once.

    A blocking wait inside XLA would hold the interrupt until the computation ends, so
    the blocking wait runs in a daemon thread and the main thread waits on an event,
    which a signal interrupts. Sleeping between polls instead oversleeps: the last sleep
    ends after the result is ready, by up to its length (figures for both in
    benchmarks/README.md, "Waiting for a call's result").
    """
    # Polled without waiting at first, for ``spin_s``: handing the wait to a thread costs
    # 0.1-0.3 ms, more than a short program runs. But the polling takes a core from the
    # program (about 1 ms lost of a longer one on 2 cores), so the caller polls only for
    # programs that were short the last time (:func:`_spin_for`), and never while the
    # program calls a hook: the polling holds the GIL the hook needs.
    spin_until = time.perf_counter() + spin_s
    # is_ready: on every jax.Array at run time, missing from jax's Array stub.
    while not value.is_ready() and time.perf_counter() < spin_until:  # type: ignore[attr-defined]
        pass
    if not value.is_ready():  # type: ignore[attr-defined]
        ready = threading.Event()

        def block() -> None:
            try:
                value.block_until_ready()
            finally:         # an error in the program is raised below, by np.asarray
                ready.set()

        threading.Thread(target=block, name="fnn-wait", daemon=True).start()
        while not ready.wait(WAKE_S):
            pass
    return np.asarray(value)        # a view on CPU; jax.device_get costs ~10x more


@functools.lru_cache(maxsize=64)
def _last_wait(cfg: Any, hooked: bool) -> list:
    """The seconds of the last wait for a result of the runner ``(cfg, hooked)``: one
    mutable cell per runner, kept as long as ``build_runner`` keeps the runner."""
    return [0.0]


def _spin_for(last_wait: list, hooked: bool) -> float:
    """How long :func:`_wait` polls: :data:`SPIN_S` unless the last wait was longer (or a hook runs)."""
    return 0.0 if hooked or last_wait[0] > SPIN_S else SPIN_S


class _Flags(NamedTuple):
    """A call's :func:`summary` on the host: epochs completed, alive, where each failed."""

    epoch: int
    alive: np.ndarray
    bad_epoch: np.ndarray
    bad_step: np.ndarray

    @classmethod
    def read(cls, packed: np.ndarray, members: int | None) -> "_Flags":
        k = 1 if members is None else members
        parts = packed[1:1 + k].astype(bool), packed[1 + k:1 + 2 * k], packed[1 + 2 * k:]
        if members is None:
            parts = tuple(a[0] for a in parts)
        return cls(int(packed[0]), *parts)


def _first_epochs(history: Mapping, member_axes: int, count: int) -> dict:
    """The first ``count`` epochs of each history entry (the epoch axis follows members)."""
    return {k: v if v.shape[member_axes] == count else v[(slice(None),) * member_axes + (slice(0, count),)]
            for k, v in history.items()}


def _reports(bad_epoch: np.ndarray, bad_step: np.ndarray, good: _rollback.LastGood | None,
             members: int | None) -> tuple:
    leaves = {} if good is None else good.leaves
    if members is None:
        if bad_epoch < 0:
            return ()
        return (NonFiniteReport(int(bad_epoch), int(bad_step), leaves.get(None)),)
    return tuple(NonFiniteReport(int(bad_epoch[k]), int(bad_step[k]), leaves.get(k), k)
                 for k in range(members) if bad_epoch[k] >= 0)


def _result(state: LoopState, members: int | None, epoch: int, reports: tuple = ()) -> FitResult:
    history = _first_epochs(state.history, 0 if members is None else 1, epoch)
    stopped: np.ndarray | int | None = None    # arrays (members,), or ints for one model
    best: np.ndarray | int | None = None
    saved = None
    if not (isinstance(state.early, tuple) and not state.early):
        e, last = state.early if len(state.early) == 2 else (state.early, None)
        saved = e._asdict()         # EarlyState's fields, as checkpoints keep them
        if last is not None:
            saved["last"] = last
        stopped, best = np.asarray(e.stopped_epoch), np.asarray(e.best_epoch)
        if members is None:
            stopped = None if stopped < 0 else int(stopped)
            best = None if best < 0 else int(best)
    return FitResult(state.params, state.opt_state, history, state.key, epoch, reports, state.model_state,
                     stopped, best, saved)


def _restored(state: LoopState, rule: Any) -> LoopState:
    """``state`` with the best epoch's params and states (early stopping's ``restore_best``)."""
    if rule is None or not rule.restore_best:
        return state
    e = state.early
    have = e.best_epoch >= 0
    pick = lambda a, b: jnp.where(have.reshape(have.shape + (1,) * (a.ndim - have.ndim)), a, b)  # noqa: E731
    # The last epoch's values stay in the early-stopping state: fit(initial=result)
    # resumes from them, as from a checkpoint.
    last = {"params": state.params, "opt_state": state.opt_state, "state": state.model_state}
    return state._replace(params=jax.tree.map(pick, e.params, state.params),
                          opt_state=jax.tree.map(pick, e.opt_state, state.opt_state),
                          model_state=jax.tree.map(pick, e.model_state, state.model_state),
                          early=(e, last))


def _logs(state: LoopState, names: list, members: int | None, epoch: int) -> dict:
    """Epoch ``epoch``'s history values on the host: floats for a single model's scalars,
    NumPy arrays otherwise (``(members,)`` for ensembles, ``(layers,)`` for grad_norms)."""
    # The whole (small) buffer to the host, indexed there: no slicing op to dispatch.
    values = {k: np.asarray(state.history[k])[(slice(None),) * (members is not None) + (epoch,)]
              for k in names}
    return {k: float(v) if np.ndim(v) == 0 else np.asarray(v) for k, v in values.items()}


def _save(path: str, state: LoopState, members: int | None, epoch: int, needs: dict) -> None:
    """Atomically write what :func:`fit` needs to resume (``initial=path``)."""
    # On several processes (fnn.parallel) process 0 writes this process's copy; all wait.
    tree = _multihost.local_view(checkpoint_tree(_result(state, members, epoch), needs))
    _multihost.once(lambda: _checkpoint.save(path, tree), "fnn.checkpoint")


def run(p: Prepared) -> FitResult:
    """Drive the compiled loop of the validated run ``p`` (fit, ensembles, sweeps, data parallel)."""
    cfg = p.cfg
    needs = resume_needs(cfg.batch_size, p.x.shape[0], cfg.order if cfg.shuffle else False,
                         cfg.accumulation_steps)
    check_resume_needs(p.fn, p.start.needs, needs)
    runner = build_runner(cfg)
    members = cfg.members
    shapes = history_shapes(cfg, p.params, p.eval_data is not None)
    names = [k for k, shape in shapes.items() if shape == ()]      # shown by the progress bar
    all_names = list(shapes)
    history = {k: v for k, v in p.start.history.items() if k in shapes}
    state = host_start(cfg, p.epochs, tuple(shapes.items()), p.params, p.opt_state, p.model_state, p.key,
                       p.start.epoch, history)
    if state is None:
        start = build_start(cfg, p.epochs, tuple(shapes.items()), p.donate)
        state = with_arrays(start(p.params, p.opt_state, p.model_state, p.hyper, p.key, p.start.epoch,
                                  history, p.start.early),
                            p.params, p.opt_state, p.model_state, p.key)
    if cfg.batch_sharding is not None:     # every call of the runner sees the same placement
        state = _multihost.replicated(state, cfg.batch_sharding.mesh)
    x_eval, y_eval = p.eval_data if p.eval_data is not None else (None, None)
    good = None                    # the guard's last good state of failed models
    # The state every call starts from survives the call only when the runner does not
    # donate it (nan_guard) : then an interrupt can still return it.
    consistent = state if cfg.nan_guard or not p.donate else None
    last_epoch = p.start.epoch
    flags = None                   # the last call's summary, on the host
    alive = np.ones(() if members is None else (members,), bool)   # every start is all alive

    # The hook runs inside the compiled loop (one call for the whole training), except
    # on several processes: there it agrees on the stop with a collective of its own
    # (fnn.parallel), which cannot run while the program runs: one call per epoch.
    in_loop = p.on_epoch is not None and not _multihost.is_multiprocess()
    per_epoch = p.on_epoch is not None and not in_loop
    hook = HookRun(p.on_epoch if in_loop else None, all_names)
    call = build_runner(cfg, hooked=True) if in_loop else runner
    last_wait = _last_wait(cfg, in_loop)

    def advance(state: LoopState, stop: int) -> LoopState:
        nonlocal good, flags, alive
        args = (state, p.hyper, p.x, p.y, x_eval, y_eval, np.int32(stop))
        after, packed = call(*args, np.int32(hook.token)) if in_loop else call(*args)
        waited = time.perf_counter()
        flags = _Flags.read(_wait(packed, _spin_for(last_wait, in_loop)), members)
        last_wait[0] = time.perf_counter() - waited
        if cfg.nan_guard and np.any(alive & ~flags.alive):
            # The runner did not donate `state`: rerun from it (only after a failure),
            # without the hook (its epochs were shown already).
            good = _rollback.update(
                lambda s, e: runner(s, p.hyper, p.x, p.y, x_eval, y_eval, np.int32(e))[0],
                state, after, good)
        alive = flags.alive
        return after

    show = _progress.default_enabled() if p.progress is None else p.progress
    try:
        with hook:
            if not show and p.checkpoint is None and not per_epoch:
                state = advance(state, p.epochs)
            else:
                n = p.x.shape[0]
                bar = (_progress.ProgressBar(p.epochs, steps_per_epoch=-(-n // min(cfg.batch_size, n)))
                       if show else None)
                epoch, chunk = p.start.epoch, 1
                while epoch < p.epochs:
                    stop = min(epoch + chunk, p.epochs) if show else p.epochs
                    if per_epoch:              # one epoch per call: the hook may stop
                        stop = epoch + 1
                    if p.checkpoint is not None:
                        stop = min(stop, (epoch // p.checkpoint_every + 1) * p.checkpoint_every)
                    t0 = time.perf_counter()
                    state = advance(state, stop)
                    done = cast(_Flags, flags).epoch   # advance just set it
                    elapsed = time.perf_counter() - t0
                    if bar is not None and done > epoch:
                        bar.update(done, {k: float(np.nanmean(np.asarray(state.history[k])[..., done - 1]))
                                          for k in names})
                    if done < stop and members is None and good is not None:
                        break                      # the non-finite guard stopped the model
                    consistent, last_epoch = _rollback.apply(state, good), done
                    if p.checkpoint is not None:
                        _save(p.checkpoint, consistent, members, done, needs)
                    if done < stop or hook.stopped or hook.error is not None:
                        break                      # early stopping, every member failed, or the hook
                    if per_epoch and cast(Callable, p.on_epoch)(
                            done - 1, _logs(state, all_names, members, done - 1)) is True:
                        break
                    if epoch > p.start.epoch:      # the first chunk included compilation
                        # capped: chunks cut short by checkpoints must not grow without bound
                        chunk = min(p.epochs, max(1, int(PROGRESS_INTERVAL_S * chunk / max(elapsed, 1e-9))))
                    epoch = done
                if bar is not None:
                    bar.close()
            hook.raise_error()         # the hook's exception, once the checkpoint is written
    except KeyboardInterrupt:
        raise Interrupted(None if consistent is None else _result(consistent, members, last_epoch)) from None
    state = _restored(_rollback.apply(state, good), cfg.early_stopping)
    if flags is None:              # no call ran (resumed at the last epoch)
        flags = _Flags.read(np.asarray(summary(state)), members)
    completed = flags.epoch
    reports = _reports(flags.bad_epoch, flags.bad_step, good, members)
    if members is None and reports:
        # Rolled back to the start of the failing epoch: epoch, history and state agree.
        completed = reports[0].epoch
    for report in reports:
        warnings.warn(str(report), RuntimeWarning, stacklevel=4)
    return _result(state, members, int(completed), reports)
