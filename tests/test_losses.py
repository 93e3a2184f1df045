"""Tests for fnn.losses against optax and closed forms: values, gradients, stability, errors."""

from __future__ import annotations

import chex
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from fnn import losses

N, K = 8, 5


def _logits(shape=(N, K), dtype=jnp.float32, scale=3.0, seed=0):
    # NumPy draws: a jax.random draw compiles once per shape, which adds up in a suite.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype)


def _int_labels(n=N, k=K, seed=1):
    return jnp.asarray(np.random.default_rng(seed).integers(0, k, n), jnp.int32)


def _binary_labels(shape=(N,), seed=1):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 2, shape), jnp.int32)


def _sigmoid64(z):
    z = np.asarray(z, np.float64)
    return np.exp(-np.logaddexp(0.0, -z))  # 1 / (1 + e^-z) without overflow


class AgainstOptaxTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_mse_matches_closed_form_and_optax(self):
        p, t = _logits((N, 3)), _logits((N, 3), seed=5)
        value = self.variant(losses.mse)(p, t)
        chex.assert_shape(value, ())
        expected = np.mean((np.asarray(p, np.float64) - np.asarray(t, np.float64)) ** 2)
        chex.assert_trees_all_close(value, expected, rtol=1e-6)
        chex.assert_trees_all_close(value, optax.squared_error(p, t).mean(), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_binary_cross_entropy_matches_closed_form_and_optax(self):
        z, y = _logits((N,)), _binary_labels()
        value = self.variant(losses.binary_cross_entropy)(z, y)
        p, y64 = _sigmoid64(z), np.asarray(y, np.float64)
        expected = -np.mean(y64 * np.log(p) + (1 - y64) * np.log(1 - p))
        chex.assert_trees_all_close(value, expected, rtol=1e-6)
        chex.assert_trees_all_close(value, optax.sigmoid_binary_cross_entropy(z, y).mean(), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_softmax_cross_entropy_matches_closed_form_and_optax(self):
        z, y = _logits(), _int_labels()
        value = self.variant(losses.softmax_cross_entropy)(z, y)
        z64 = np.asarray(z, np.float64)
        log_p = z64 - np.log(np.exp(z64).sum(-1, keepdims=True))
        expected = -np.mean(log_p[np.arange(N), np.asarray(y)])
        chex.assert_trees_all_close(value, expected, rtol=1e-6)
        optax_value = optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
        chex.assert_trees_all_close(value, optax_value, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.0, 3.0, 1e4)
    def test_binary_cross_entropy_grad_is_textbook(self, scale):
        # dL/dz = (sigmoid(z) - y) / n, for ordinary logits, logits of exactly 0 (where a
        # zero-initialised output layer starts: 0.5 - y) and logits of +-1e4.
        z = _logits((N,), scale=scale) if scale != 1e4 else jnp.tile(jnp.array([1e4, -1e4]), N // 2)
        y = _binary_labels()
        g = self.variant(jax.grad(losses.binary_cross_entropy))(z, y)
        expected = (_sigmoid64(z) - np.asarray(y)) / N
        chex.assert_trees_all_close(np.asarray(g, np.float64), expected, atol=1e-7)
        optax_loss = lambda z: optax.sigmoid_binary_cross_entropy(z, y).mean()  # noqa: E731
        chex.assert_trees_all_close(g, jax.grad(optax_loss)(z), atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.0, 3.0, 1e4)
    def test_softmax_cross_entropy_grad_is_textbook(self, scale):
        # dL/dz = (softmax(z) - onehot(y)) / n
        z, y = _logits(scale=scale), _int_labels()
        g = self.variant(jax.grad(losses.softmax_cross_entropy))(z, y)
        z64 = np.asarray(z, np.float64)
        p = np.exp(z64 - z64.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        expected = (p - np.eye(K)[np.asarray(y)]) / N
        chex.assert_tree_all_finite(g)
        chex.assert_trees_all_close(np.asarray(g, np.float64), expected, atol=1e-7)


def test_binary_cross_entropy_grad_at_zero_is_half_minus_label():
    y = jnp.array([0, 1, 1, 0])
    g = jax.grad(losses.binary_cross_entropy)(jnp.zeros(4), y)
    np.testing.assert_array_equal(g, (0.5 - np.asarray(y)) / 4)
    # The rewrite max(z, 0) - z y + log1p(exp(-|z|)) with jnp.maximum/abs gets -y / n at
    # z = 0 (maximum's subgradient 1/2 and the abs term's -1/2 cancel, so sigmoid(0) = 1/2
    # is lost): the failure this test exists to catch.
    def naive(z):
        return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))

    np.testing.assert_array_equal(jax.grad(naive)(jnp.zeros(4)), -np.asarray(y) / 4)


def test_binary_cross_entropy_stable_at_large_logits():
    z = jnp.array([1e4, -1e4, 1e4, -1e4, 0.0])
    y = jnp.array([1, 0, 0, 1, 1])
    value, g = jax.jit(jax.value_and_grad(losses.binary_cross_entropy))(z, y)
    # Right answers cost 0, wrong ones |z|, the zero logit log 2.
    chex.assert_trees_all_close(value, (2e4 + np.log(2)) / 5, rtol=1e-6)
    np.testing.assert_array_equal(g, np.array([0, 0, 1, -1, -0.5], np.float32) / 5)


def test_softmax_cross_entropy_stable_at_large_logits():
    z = jnp.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [0.0, 0.0, 0.0]])
    y = jnp.array([0, 1, 2])
    value, g = jax.jit(jax.value_and_grad(losses.softmax_cross_entropy))(z, y)
    chex.assert_trees_all_close(value, (0 + 2e4 + np.log(3)) / 3, rtol=1e-6)
    expected = np.array([[0, 0, 0], [1, -1, 0], [1 / 3, 1 / 3, -2 / 3]]) / 3
    chex.assert_trees_all_close(g, expected.astype(np.float32), atol=1e-7)


def test_mse_grad_is_textbook():
    p, t = _logits((N, 3)), _logits((N, 3), seed=5)
    g = jax.grad(losses.mse)(p, t)
    chex.assert_trees_all_close(g, 2 * (p - t) / p.size, rtol=1e-6)


def test_losses_check_grads_float64(x64):
    z = _logits((N, K), jnp.float64)
    y = _int_labels()
    yb = _binary_labels((N, K))
    t = _logits((N, K), jnp.float64, seed=3)
    # One program for the three losses: a check per loss costs a compilation each.
    stacked = jax.jit(lambda z: jnp.stack([losses.softmax_cross_entropy(z, y),
                                           losses.binary_cross_entropy(z, yb), losses.mse(z, t)]))
    check_grads(stacked, (z,), order=1, modes=("fwd", "rev"))


def test_losses_float64_match_optax(x64):
    z, zb = _logits(dtype=jnp.float64), _logits((N,), jnp.float64)
    y, yb = _int_labels(), _binary_labels()
    sce = losses.softmax_cross_entropy(z, y)
    bce = losses.binary_cross_entropy(zb, yb)
    assert sce.dtype == bce.dtype == jnp.float64
    np.testing.assert_allclose(sce, optax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
                               rtol=1e-13)
    np.testing.assert_allclose(bce, optax.sigmoid_binary_cross_entropy(zb, yb).mean(), rtol=1e-13)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_losses_low_precision_in_low_precision_out(dtype):
    z, zb = _logits(dtype=dtype), _logits((N,), dtype)
    y, yb = _int_labels(), _binary_labels()
    cases = [(losses.softmax_cross_entropy, z, y), (losses.binary_cross_entropy, zb, yb),
             (losses.mse, zb, zb * 0.5)]
    for loss, logits, labels in cases:
        value, g = jax.jit(jax.value_and_grad(loss))(logits, labels)
        assert value.dtype == dtype and g.dtype == dtype, loss.__name__
        chex.assert_tree_all_finite((value, g))
        exact = loss(logits.astype(jnp.float32), labels.astype(jnp.float32) if loss is losses.mse
                     else labels)
        chex.assert_trees_all_close(value.astype(jnp.float32), exact, rtol=2e-2)


def test_binary_cross_entropy_bfloat16_large_logits_finite():
    z = jnp.array([1e4, -1e4, 0.0], jnp.bfloat16)
    value, g = jax.jit(jax.value_and_grad(losses.binary_cross_entropy))(z, jnp.array([0, 1, 1]))
    chex.assert_tree_all_finite((value, g))
    np.testing.assert_array_equal(np.asarray(g, np.float32),
                                  np.asarray(jnp.array([1, -1, -0.5], jnp.bfloat16) / 3, np.float32))


@pytest.mark.parametrize("label_shape", [(N,), (N, 1)])
def test_binary_cross_entropy_single_output_column(label_shape):
    # A model with one output unit returns (n, 1) logits; (n,) labels must fit it.
    z = _logits((N, 1))
    y = _binary_labels()
    loss = jax.jit(losses.binary_cross_entropy)
    chex.assert_trees_all_close(loss(z, y.reshape(label_shape)), loss(z[:, 0], y))


def test_binary_cross_entropy_soft_labels_match_optax():
    z = _logits((N,))
    y = jnp.asarray(np.random.default_rng(9).uniform(size=N), jnp.float32)
    chex.assert_trees_all_close(losses.binary_cross_entropy(z, y),
                                optax.sigmoid_binary_cross_entropy(z, y).mean(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int8, jnp.bool_])
def test_softmax_cross_entropy_small_integer_labels(dtype):
    # Regression: with uint8 labels and 300 classes, arange(300) and the bound 300 wrapped
    # in uint8 and the loss was NaN; bool labels failed inside jnp.arange.
    k, y = {jnp.uint8: (300, [0, 255, 1, 200]), jnp.int8: (200, [0, 127, 1, 100]),
            jnp.bool_: (2, [0, 1, 1, 0])}[dtype]
    z = _logits((4, k))
    y = jnp.array(y)
    loss = jax.jit(losses.softmax_cross_entropy)
    expected = loss(z, y.astype(jnp.int32))
    chex.assert_trees_all_close(loss(z, y.astype(dtype)), expected)
    if dtype == jnp.uint8:  # eagerly too: concrete labels also go through the range check
        chex.assert_trees_all_close(losses.softmax_cross_entropy(z, y.astype(dtype)), expected)


def test_softmax_cross_entropy_leading_batch_axes():
    z, y = _logits((2, 4, K)), _int_labels(8).reshape(2, 4)
    loss = jax.jit(losses.softmax_cross_entropy)
    chex.assert_trees_all_close(loss(z, y), loss(z.reshape(8, K), y.reshape(8)))


@pytest.mark.parametrize("bad_label", [K, -1])
def test_softmax_cross_entropy_out_of_range_label_under_jit_is_nan(bad_label):
    # Under jit labels are not concrete and cannot be checked; the loss must not silently
    # drop the example (one_hot of an out-of-range label is all zeros, loss 0).
    y = _int_labels().at[3].set(bad_label)
    assert jnp.isnan(jax.jit(losses.softmax_cross_entropy)(_logits(), y))


# ---- hypothesis: textbook gradients over the whole logit range ----------------------------

@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float32, (6,), elements=st.floats(-1e4, 1e4, width=32)),
       hnp.arrays(np.int32, (6,), elements=st.integers(0, 1)))
def test_binary_cross_entropy_grad_textbook_property(z, y):
    g = jax.grad(losses.binary_cross_entropy)(z, y)
    expected = (_sigmoid64(z) - y) / 6
    chex.assert_trees_all_close(np.asarray(g, np.float64), expected, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float32, (3, 4), elements=st.floats(-1e4, 1e4, width=32)),
       hnp.arrays(np.int32, (3,), elements=st.integers(0, 3)))
def test_softmax_cross_entropy_grad_textbook_property(z, y):
    g = jax.grad(losses.softmax_cross_entropy)(z, y)
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    chex.assert_trees_all_close(np.asarray(g, np.float64), (p - np.eye(4)[y]) / 3, atol=1e-7)


# ---- errors ------------------------------------------------------------------------------

# (id, call, exception, message): every raise in fnn.losses, matched on its argument.
ERRORS = [
    ("mse-shape", lambda: losses.mse(jnp.zeros((4, 1)), jnp.zeros(4)), ValueError,
     r"mse: targets must have the same shape as predictions \(4, 1\); got shape \(4,\)"),
    ("mse-int-predictions", lambda: losses.mse(jnp.zeros(3, jnp.int32), jnp.zeros(3)), TypeError,
     r"mse: predictions must have a floating dtype"),
    ("mse-str-targets", lambda: losses.mse(jnp.zeros(3), "y"), TypeError,
     r"mse: targets must be an array"),
    ("bce-shape", lambda: losses.binary_cross_entropy(jnp.zeros(8), jnp.zeros(4)), ValueError,
     r"binary_cross_entropy: labels must have shape \(8,\) or \(\) to match logits of shape "
     r"\(8,\); got shape \(4,\)"),
    ("bce-column-labels-flat-logits",
     lambda: losses.binary_cross_entropy(jnp.zeros(8), jnp.zeros((8, 1))), ValueError,
     r"binary_cross_entropy: labels must have shape"),
    ("bce-label-2", lambda: losses.binary_cross_entropy(jnp.zeros(3), jnp.array([0, 2, 1])),
     ValueError, r"binary_cross_entropy: labels must be in \{0, 1\}"),
    ("bce-label-negative",
     lambda: losses.binary_cross_entropy(jnp.zeros(3), jnp.array([-1, 0, 1])), ValueError,
     r"binary_cross_entropy: labels must be in \{0, 1\}"),
    ("bce-int-logits", lambda: losses.binary_cross_entropy(jnp.array([1, 0]), jnp.array([1, 0])),
     TypeError, r"binary_cross_entropy: logits must have a floating dtype"),
    ("bce-none-labels", lambda: losses.binary_cross_entropy(jnp.zeros(2), None), TypeError,
     r"binary_cross_entropy: labels must be an array"),
    ("sce-one-hot-labels",
     lambda: losses.softmax_cross_entropy(_logits(), jax.nn.one_hot(_int_labels(), K)), TypeError,
     r"softmax_cross_entropy: labels must have an integer dtype"),
    ("sce-shape", lambda: losses.softmax_cross_entropy(_logits(), _int_labels().reshape(N, 1)),
     ValueError, r"softmax_cross_entropy: labels must have shape \(8,\) .*got shape \(8, 1\)"),
    ("sce-label-K", lambda: losses.softmax_cross_entropy(_logits(), _int_labels().at[0].set(K)),
     ValueError, rf"softmax_cross_entropy: labels must be class indices in \[0, {K}\)"),
    ("sce-label-negative",
     lambda: losses.softmax_cross_entropy(_logits(), _int_labels().at[0].set(-1)), ValueError,
     rf"softmax_cross_entropy: labels must be class indices in \[0, {K}\)"),
    ("sce-scalar-logits", lambda: losses.softmax_cross_entropy(jnp.float32(1.0), jnp.int32(0)),
     ValueError, r"softmax_cross_entropy: logits must have at least 1 dimension"),
    ("sce-int-logits",
     lambda: losses.softmax_cross_entropy(jnp.zeros((2, 3), jnp.int32), jnp.array([0, 1])),
     TypeError, r"softmax_cross_entropy: logits must have a floating dtype"),
]


@pytest.mark.parametrize("call,exception,message", [case[1:] for case in ERRORS],
                         ids=[case[0] for case in ERRORS])
def test_loss_error_names_the_argument(call, exception, message):
    with pytest.raises(exception, match=message):
        call()
