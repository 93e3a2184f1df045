"""fnn.parallel: data-parallel fit over 8 simulated CPU devices equals the single-device fit,
and fit_batches over 4 of them equals the single-device fit_batches (one subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import pytest

import fnn
import fnn.parallel

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, fnn, fnn.parallel
    assert len(jax.devices()) == 8, jax.devices()
    x = jax.random.normal(jax.random.key(0), (300, 6))
    y = jnp.argmax(x[:, :3], axis=1)
    model = fnn.mlp([32, 3])
    params = model.init(jax.random.key(1), (6,))
    opt = fnn.optimizers.adam(1e-2)
    kw = dict(epochs=4, batch_size=64, key=jax.random.key(2), eval_data=(x, y), progress=False)
    single = fnn.fit(model, params, opt, x, y, **kw)
    sharded = fnn.parallel.fit(model, params, opt, x, y, **kw)
    spec = sharded.params[0]["w"].sharding
    assert len(spec.device_set) == 8, spec
    for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(sharded.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    for k in single.history:
        np.testing.assert_allclose(single.history[k], sharded.history[k], rtol=1e-4, atol=1e-5)
    try:
        fnn.parallel.fit(model, params, opt, x, y, epochs=1, batch_size=60, key=jax.random.key(0))
    except ValueError as e:
        assert "batch_size must be a multiple of the 8 devices" in str(e), e
    else:
        raise AssertionError("no error for batch_size 60 on 8 devices")
    print("OK fit")

    # fit_batches on 4 of the devices, batches of 64 and a last one of 42 (not a multiple
    # of 4: replicated); the model records the sharding of the batch each step sees.
    seen = []
    def apply(params, xb):
        jax.debug.inspect_array_sharding(xb, callback=seen.append)
        return model.apply(params, xb)
    xn, yn = np.asarray(x), np.asarray(y)
    batches = [(xn[i:i + 64], yn[i:i + 64]) for i in range(0, 256, 64)] + [(xn[256:298], yn[256:298])]
    kw = dict(epochs=3, steps_per_call=3, eval_data=(xn, yn), progress=False)
    single = fnn.training.fit_batches(model, params, opt, batches, **kw)
    sharded = fnn.parallel.fit_batches(apply, params, opt, batches, devices=jax.devices()[:4], **kw)
    assert any(s.spec == jax.sharding.PartitionSpec("data") and len(s.device_set) == 4 for s in seen), seen
    assert len(sharded.params[0]["w"].sharding.device_set) == 4
    for a, b in zip(jax.tree.leaves((single.params, single.opt_state)),
                    jax.tree.leaves((sharded.params, sharded.opt_state))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert single.history.keys() == sharded.history.keys()
    for k in single.history:
        np.testing.assert_allclose(single.history[k], sharded.history[k], rtol=1e-5, atol=1e-6)
    try:
        fnn.parallel.fit_batches(model, params, opt, [(xn[:30], yn[:30])], devices=jax.devices()[:4])
    except ValueError as e:
        assert "batch size must be a multiple of the 4 devices" in str(e), e
    else:
        raise AssertionError("no error for a batch of 30 on 4 devices")
    print("OK fit_batches")
""")


@pytest.fixture(scope="module")
def on_8_devices() -> str:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300)
    return out.stdout + out.stderr[-3000:]


def test_parallel_fit_equals_single_device_on_8_devices(on_8_devices):
    assert "OK fit\n" in on_8_devices, on_8_devices


def test_parallel_fit_batches_equals_single_device_fit_batches_on_4_devices(on_8_devices):
    assert "OK fit_batches\n" in on_8_devices, on_8_devices


def test_parallel_fit_on_one_device_matches_fit():
    x = jax.random.normal(jax.random.key(0), (40, 3))
    y = (x[:, 0] > 0).astype(int)
    model = fnn.mlp([4, 2])
    params = model.init(jax.random.key(1), (3,))
    kw = dict(epochs=2, batch_size=8, key=jax.random.key(2), progress=False)
    a = fnn.fit(model, params, fnn.optimizers.sgd(0.1), x, y, **kw)
    b = fnn.parallel.fit(model, params, fnn.optimizers.sgd(0.1), x, y, devices=jax.devices()[:1], **kw)
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        assert jax.numpy.allclose(u, v, rtol=1e-6, atol=1e-7)


def test_data_mesh_rejects_empty_device_list():
    with pytest.raises(ValueError, match="data_mesh: devices"):
        fnn.parallel.data_mesh([])
