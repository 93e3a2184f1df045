"""Where a run resumes from: a previous result or checkpoint, checked against this run."""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks, checkpoint
from fnn.training._results import FitResult

__all__ = ["ResumePoint", "resume_point", "restructure", "structure_text", "loaded", "initial_params",
           "resume_needs", "check_resume_needs", "checkpoint_tree", "save_point"]


class ResumePoint(NamedTuple):
    """The epochs already run, their history, and how the saved optimizer state was built."""

    epoch: int
    history: dict
    opt_state_structure: str | None     # str of its tree structure, when the checkpoint says
    early: Any = None                   # the early-stopping state saved (a dict), if any
    needs: Any = None                   # the checkpoint's resume_needs (a dict), if recorded


def structure_text(tree: Any) -> str:
    """The tree structure of an optimizer state as text (its NamedTuple types and fields)."""
    return str(jax.tree.structure(tree))


def resume_needs(batch_size: int, examples: int, shuffle: Any, accumulation_steps: int) -> dict:
    """What a bit-identical continuation depends on besides the state: the batch size, the
    number of training examples, the shuffle and the accumulation (each changes which
    examples every step sees). Recorded in :func:`fnn.fit`'s checkpoints."""
    return {"batch_size": int(batch_size), "examples": int(examples), "shuffle": str(shuffle),
            "accumulation_steps": int(accumulation_steps)}


def check_resume_needs(fn: str, saved: Any, now: dict) -> None:
    """Refuse to resume a checkpoint under other :func:`resume_needs` than it was saved with
    (a checkpoint that records none, or a :class:`FitResult`, is not checked)."""
    if not isinstance(saved, Mapping):
        return
    arg = {"examples": "x", "shuffle": "shuffle"}
    for name, value in now.items():
        if name in saved and saved[name] != value:
            what = f"{saved[name]} examples" if name == "examples" else repr(saved[name])
            _checks.fail(fn, arg.get(name, name),
                         f"be as in the checkpoint resumed with initial= ({what}: a resumed run "
                         "continues bit-identically only on the same data, batch size, shuffle and "
                         "accumulation; to train on with another, pass the checkpoint's params and "
                         "opt_state instead of initial=)",
                         f"{value} examples" if name == "examples" else repr(value))


def checkpoint_tree(result: FitResult, needs: dict | None = None) -> dict:
    """What :func:`fnn.fit` saves to resume from (``initial=path``)."""
    tree = {"params": result.params, "opt_state": result.opt_state, "history": result.history,
            "key": result.key, "epoch": result.epoch, "state": result.state,
            "opt_state_structure": structure_text(result.opt_state)}
    if result.early_stopping is not None:
        tree["early_stopping"] = result.early_stopping
    if needs is not None:
        tree["resume_needs"] = needs
    return tree


def save_point(path: str, result: FitResult, needs: dict | None = None) -> None:
    """Atomically write :func:`checkpoint_tree` of ``result`` (``initial=path`` resumes it)."""
    checkpoint.save(path, checkpoint_tree(result, needs))


def loaded(initial: Any) -> Any:
    """``initial`` with a checkpoint path replaced by the checkpoint's contents."""
    return checkpoint.load(initial) if isinstance(initial, (str, os.PathLike)) else initial


def initial_params(initial: Any) -> Any:
    """The params of a loaded resume point (None when it has none)."""
    if isinstance(initial, FitResult):
        return initial.params
    return initial.get("params") if isinstance(initial, Mapping) else None


def _as_result(fn: str, initial: Any) -> tuple[FitResult, str | None, Any]:
    """A FitResult from a FitResult, a dict of its fields, or a checkpoint path, the
    optimizer state's structure and the resume needs recorded in a checkpoint (None: not
    recorded)."""
    initial = loaded(initial)
    if isinstance(initial, FitResult):
        return initial, None, None
    needed = ("params", "opt_state", "history", "key", "epoch")
    if not isinstance(initial, Mapping) or any(k not in initial for k in needed):
        _checks.fail(fn, "initial", f"be a FitResult, a checkpoint path or a dict with {needed}",
                     type(initial).__name__, TypeError)
    structure = initial.get("opt_state_structure")
    return (FitResult(**{k: initial[k] for k in needed}, state=initial.get("state", ()),
                      early_stopping=initial.get("early_stopping")),
            structure if isinstance(structure, str) else None, initial.get("resume_needs"))


def _epoch_of(fn: str, value: Any) -> int:
    if isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) == 0 and np.issubdtype(
            np.asarray(value).dtype, np.integer):
        value = int(value)
    return _checks.nonneg_int(fn, "initial epoch", value)


def resume_point(fn: str, initial: Any, epochs: int, members: int | None):
    """``(ResumePoint, params, opt_state, state, key)`` of ``initial``, checked."""
    result, structure, needs = _as_result(fn, initial)
    start = _epoch_of(fn, result.epoch)
    if start > epochs:
        _checks.fail(fn, "epochs", f"be at least the epochs already run by initial ({start})", epochs)
    history = result.history
    if not isinstance(history, Mapping):
        _checks.fail(fn, "initial history", "be a dict of per-epoch arrays", _checks.describe(history),
                     TypeError)
    axes = 0 if members is None else 1
    for name, values in history.items():
        shape = jnp.shape(values)
        if len(shape) < axes + 1 or shape[axes] != start or (members is not None and shape[0] != members):
            want = f"({members}, {start}, ...)" if members is not None else f"({start}, ...)"
            _checks.fail(fn, f"initial history[{name!r}]", f"have shape {want}: one value per epoch run"
                         + ("" if members is None else " per member"), f"shape {shape}")
    params, opt_state, state, early = result.params, result.opt_state, result.state, result.early_stopping
    if isinstance(early, Mapping) and "last" in early:
        # A result whose params early stopping restored to the best epoch's: resume from
        # the last epoch's values, as the uninterrupted run goes on from them.
        params, opt_state, state = (early["last"][k] for k in ("params", "opt_state", "state"))
    return ResumePoint(start, dict(history), structure, early, needs), params, opt_state, state, result.key


def restructure(fn: str, opt_state: Any, template: Any, saved_structure: str | None) -> Any:
    """Give a loaded optimizer state (NamedTuples come back as tuples) its real types.

    Refused when the state was built by another optimizer: the structure recorded at save
    time, or the NamedTuple types of a live state, must be the template's.
    """
    expected = jax.tree.structure(template)
    if saved_structure is not None and saved_structure != str(expected):
        _checks.fail(fn, "initial", "hold the optimizer state of this optimizer "
                     f"({str(expected)[:200]})", f"one saved by another optimizer ({saved_structure[:200]})")
    if jax.tree.structure(opt_state) == expected:
        return opt_state
    if not isinstance(opt_state, (tuple, list, dict)):
        _checks.fail(fn, "opt_state", "be an optimizer state (optimizer.init(params))",
                     _checks.describe(opt_state), TypeError)
    typed = any(hasattr(type(node), "_fields") for node in
                jax.tree.leaves(opt_state, is_leaf=lambda n: hasattr(type(n), "_fields")))
    leaves, want = jax.tree.leaves(opt_state), jax.tree.leaves(template)
    if typed or len(leaves) != len(want) or any(jnp.shape(a) != b.shape for a, b in zip(leaves, want)):
        _checks.fail(fn, "opt_state", f"match optimizer.init(params): {str(expected)[:200]} with "
                     f"{len(want)} leaves {[b.shape for b in want][:8]}",
                     f"{str(jax.tree.structure(opt_state))[:200]} with {len(leaves)} leaves "
                     f"{[jnp.shape(a) for a in leaves][:8]}")
    return jax.tree.unflatten(expected, leaves)
