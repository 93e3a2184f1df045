r"""Names and children of layers, for :func:`fnn.summary` (part of :mod:`fnn.layers`).

A layer is the NamedTuple ``(init, apply)`` and nothing more (the contract fixes its
fields), so what a layer *is* — its name and, for a combinator, its parts — is kept
beside it: each factory hands its result to :func:`named`, which files a
:class:`Description` under the layer's ``apply`` function in a weak-keyed dict. The
entry goes away with the layer; a layer that was never described (a hand-written
``Layer(init, apply)``, ``fnn.mlp``) is summarised as one row.

``route`` says how a combinator's params, state and input reach its parts:

- ``"serial"``: params and state are lists with one entry per part; each part's input
  is the previous part's output.
- ``"parallel"``: the same lists; part ``i`` gets input ``i``.
- ``"wrap"``: one part with the combinator's own params and state and input
  (:func:`residual`, :func:`mixed_precision`).
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

__all__ = ["Description", "named", "description", "input_dtype"]

ROUTES = ("leaf", "serial", "parallel", "wrap")


class Description(NamedTuple):
    """What :func:`fnn.summary` shows of a layer."""

    name: str
    children: tuple = ()
    route: str = "leaf"
    input_dtype: Any = None  # dtype of a sample input when not floating (embedding: int32)


_DESCRIPTIONS: "weakref.WeakKeyDictionary[Any, Description]" = weakref.WeakKeyDictionary()


def named(layer: Any, name: str, children: tuple = (), route: str = "leaf", *,
          input_dtype: Any = None) -> Any:
    """File ``layer``'s name and parts for :func:`fnn.summary`; returns ``layer`` itself.

    Example:
      >>> import fnn
      >>> from fnn.layers import named, description
      >>> layer = named(fnn.layers.Layer(lambda k, s: (), lambda p, x: 2 * x), "double")
      >>> description(layer).name
      'double'
    """
    if route not in ROUTES:
        raise ValueError(f"named: route must be one of {ROUTES}; got {route!r}")
    _DESCRIPTIONS[layer.apply] = Description(str(name), tuple(children), route, input_dtype)
    return layer


def description(layer: Any) -> Description | None:
    """The :class:`Description` filed for ``layer``, or None."""
    apply = getattr(layer, "apply", None) if isinstance(layer, tuple) else None
    try:
        return None if apply is None else _DESCRIPTIONS.get(apply)
    except TypeError:
        return None


def input_dtype(layer: Any, default: Any) -> Any:
    """The dtype of a sample input for ``layer``: int32 for an embedding, also as a first part."""
    info = description(layer)
    while info is not None and info.input_dtype is None and info.route in ("serial", "wrap") and info.children:
        info = description(info.children[0])
    return default if info is None or info.input_dtype is None else info.input_dtype
