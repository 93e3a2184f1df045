"""Pure models train exactly as before the general layer form existed.

``tests/data/pure_fit_digests.json`` holds SHA-256 digests of the params, optimizer state
and history of five pure-model runs (fit with eval and grad norms, a ragged tanh net
with momentum, a fixed order, an ensemble, a sweep), recorded with the commit before
``StatefulLayer`` was added. Any change to the compiled program of a pure model that
moves a single bit fails here.
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn

DIGESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "pure_fit_digests.json")


def _digest(tree) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        a = np.asarray(leaf)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _runs():
    x, y = fnn.datasets.blobs(jax.random.key(0), 300)
    m = fnn.mlp([16, 3])
    p = m.init(jax.random.key(1), (2,))
    k = jax.random.key(2)
    yield "fit_adam_eval_gradnorms", lambda: fnn.fit(
        m, p, fnn.optimizers.adam(1e-2), x, y, epochs=4, batch_size=32, key=k,
        eval_data=(x[:50], y[:50]), progress=False, grad_norms=True)
    m2 = fnn.mlp([8, 8, 3], activation="tanh")
    p2 = m2.init(jax.random.key(3), (2,))
    yield "fit_momentum_tanh_ragged", lambda: fnn.fit(
        m2, p2, fnn.optimizers.momentum(0.05), x, y, epochs=3, batch_size=64, key=k, progress=False)
    yield "fit_sgd_noshuffle", lambda: fnn.fit(
        m, p, fnn.optimizers.sgd(0.1), x, y, epochs=2, batch_size=50, shuffle=False, progress=False)
    ps = fnn.training.init_ensemble(m, jax.random.split(jax.random.key(4), 3), (2,))
    yield "ensemble3", lambda: fnn.training.fit_ensemble(
        m, ps, fnn.optimizers.adam(1e-2), x, y, epochs=3, key=k, eval_data=(x, y), progress=False)
    yield "sweep2", lambda: fnn.training.fit_sweep(
        m, p, fnn.optimizers.adam, jnp.array([1e-3, 1e-2]), x, y, epochs=3, key=k, progress=False)


@pytest.mark.parametrize("name, run", list(_runs()), ids=[n for n, _ in _runs()])
def test_pure_fit_is_bit_identical_to_before_the_general_layer_form(name, run):
    with open(DIGESTS) as f:
        recorded = json.load(f)[name]
    r = run()
    got = {"params": _digest(r.params), "opt_state": _digest(r.opt_state),
           "history": _digest([r.history[k] for k in sorted(r.history)]), "epoch": int(r.epoch)}
    assert got == recorded
