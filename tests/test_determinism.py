"""Determinism: the same keys give bit-identical data, params and history; other keys differ.

The reference run below (a keyed dataset with split and standardisation, an MLP trained by
``fit`` with evaluation, and an ensemble trained by ``fit_ensemble``) is executed in two
fresh Python processes at once and in this process, and every array is compared by a
SHA-256 of its dtype, shape and bytes. Bit-identical means equal digests, not ``allclose``.
A different key must change every array (the optimizer's step ``count`` aside).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import datasets, optimizers, training

# The reference run, executed verbatim in a subprocess and in this process.
REFERENCE = r'''
import hashlib

import jax
import numpy as np

import fnn
from fnn import datasets, optimizers, training


def digest(tree):
    """{pytree path: sha256 of dtype, shape and bytes} for every array leaf (keys as data)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = np.asarray(leaf)
        h = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
        out[jax.tree_util.keystr(path)] = h.hexdigest()
    return out


# Built once per process, so that a second run in the same process reuses the compiled
# programs (fit caches them per model and optimizer) and tests exactly that.
MODEL = fnn.mlp([16, 2])
ADAM, MOMENTUM = optimizers.adam(1e-2), optimizers.momentum(0.05)
INIT = jax.jit(MODEL.init, static_argnums=1)


def reference_run(seed):
    k_data, k_init, k_fit, k_members = jax.random.split(jax.random.key(seed), 4)
    x, y = datasets.moons(k_data, 96, noise=0.2)
    data = datasets.train_test_split(k_data, x, y, stratify=True)
    stats = datasets.fit_standardizer(data.x_train)
    x_train, x_test = datasets.standardize(data.x_train, stats), datasets.standardize(data.x_test, stats)
    fit = training.fit(MODEL, INIT(k_init, (2,)), ADAM, x_train, data.y_train, epochs=3,
                       batch_size=16, key=k_fit, eval_data=(x_test, data.y_test))
    # Stacked members (what init_ensemble gives), from the one compiled init.
    members = jax.tree.map(lambda *a: np.stack(a), *[INIT(k, (2,)) for k in jax.random.split(k_members, 3)])
    ensemble = training.fit_ensemble(MODEL, members, MOMENTUM, x_train, data.y_train, epochs=2,
                                     batch_size=16, key=k_fit)
    return {
        "data": digest((x, y, x_train, data.y_train, x_test, data.y_test)),
        "fit.params": digest(fit.params), "fit.opt_state": digest(fit.opt_state),
        "fit.history": digest(fit.history), "fit.key": digest(fit.key),
        "ensemble.params": digest(ensemble.params), "ensemble.opt_state": digest(ensemble.opt_state),
        "ensemble.history": digest(ensemble.history),
    }
'''

_NAMESPACE: dict = {}
exec(compile(REFERENCE, "<determinism reference>", "exec"), _NAMESPACE)
digest, reference_run = _NAMESPACE["digest"], _NAMESPACE["reference_run"]


def _start_subprocesses(seed: int, count: int) -> list[subprocess.Popen]:
    """Start the reference in ``count`` fresh interpreters; collect with :func:`_collect`."""
    script = REFERENCE + f"\nimport json\nprint(json.dumps(reference_run({seed})))\n"
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    return [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for _ in range(count)]


def _collect(procs: list[subprocess.Popen]) -> list[dict]:
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _differing(a: dict, b: dict) -> list[str]:
    return [f"{group}{path}" for group in a for path in a[group] if a[group][path] != b[group].get(path)]


@pytest.fixture(scope="module")
def runs():
    """The reference run with key 0: (this process, first subprocess, second subprocess).

    The subprocesses start first, so that they compile while this process does.
    """
    procs = _start_subprocesses(0, 2)
    try:
        here = reference_run(0)
    finally:
        subprocesses = _collect(procs)
    return (here, *subprocesses)


def test_fit_and_ensemble_are_bit_identical_across_processes(runs):
    here, first, second = runs
    assert first == second, _differing(first, second)
    # And this process (pytest around it, other tests' compilations cached) agrees.
    assert here == first, _differing(here, first)
    assert all(first[group] for group in first)


def test_fit_and_ensemble_are_bit_identical_twice_in_one_process(runs):
    again = reference_run(0)
    assert again == runs[0], _differing(again, runs[0])


def test_another_key_changes_every_array(runs):
    here, other = runs[0], reference_run(1)
    same = [f"{group}{path}" for group in here for path in here[group]
            if here[group][path] == other[group][path] and not path.endswith(".count")]
    assert not same, f"unchanged by a new key: {same}"


# --- each key on its own ------------------------------------------------------------------------

MODEL = fnn.mlp([8, 3])
SGD = optimizers.sgd(0.1)                # one optimizer object: fit compiles once for all
X = jnp.asarray(np.random.default_rng(0).standard_normal((40, 4)), jnp.float32)
Y = jnp.argmax(X[:, :3], axis=1)


def _fit(init_seed: int, shuffle_seed: int):
    params = MODEL.init(jax.random.key(init_seed), (4,))
    return training.fit(MODEL, params, SGD, X, Y, epochs=2, batch_size=8,
                        key=jax.random.key(shuffle_seed))


def test_fit_init_key_and_shuffle_key_each_change_the_result():
    base, other_init, other_order = _fit(0, 0), _fit(1, 0), _fit(0, 1)
    for other in (other_init, other_order):
        assert digest(other.params) != digest(base.params)
        assert digest(other.history) != digest(base.history)
    # Same keys again: the same bits.
    assert digest(_fit(0, 0)) == digest(base)


def test_fit_without_shuffle_ignores_the_key():
    # shuffle=False visits the examples in order: the key must not leak into the result.
    params = MODEL.init(jax.random.key(0), (4,))
    a = training.fit(MODEL, params, SGD, X, Y, epochs=2, batch_size=8, shuffle=False)
    b = training.fit(MODEL, params, SGD, X, Y, epochs=2, batch_size=8, shuffle=False,
                     key=jax.random.key(7))
    assert digest((a.params, a.history)) == digest((b.params, b.history))


def test_datasets_same_key_same_bits_other_key_other_bits():
    # The generators and load are checked bit for bit in tests/test_datasets.py, and
    # across processes above; here the keyed split and batching.
    x, y = X, Y

    def draw(seed):
        key = jax.random.key(seed)
        return [digest(tuple(datasets.train_test_split(key, x, y, stratify=True))),
                digest(tuple(datasets.train_test_split(key, x, y))),
                digest(tuple(datasets.batches(key, x, y, 6)))]

    first, second, other = draw(0), draw(0), draw(1)
    assert first == second
    assert all(a != b for a, b in zip(first, other))
