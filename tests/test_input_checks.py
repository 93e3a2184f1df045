"""Bad input across the whole public API fails early, with a message naming the argument.

One table calls every public function with wrong shapes, wrong ranks, wrong dtypes (ints
where floats are needed, float labels where class indices are needed), labels out of
range, mismatched pytrees, invalid hyperparameters and wrong types (None, strings). Each
row asserts the exact exception type (``ValueError``/``TypeError``, or the documented
subclass ``CheckpointError``) and the house format
``"<function>: <arg> must <expectation>; got <what came>"``, raised in Python at call or
trace time (several rows run under ``jax.jit``) rather than as an opaque XLA error.

Rows marked ``xfail(strict=True)`` are bugs in modules owned by others, reported to the
lead; each turns into an XPASS failure once fixed, so the mark must then be removed.
The last tests check that validation costs nothing inside compiled code.
"""

from __future__ import annotations

import collections
import functools
import re

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import activations as A
from fnn import backprop, checkpoint, datasets, diagnostics, initializers, layers, losses, metrics
from fnn import compilation_cache, models, optimizers, parallel, perceptron, training

KEY = jax.random.key(0)

# --- small fixtures shared by the rows (built once, at import) --------------------------

X43 = jnp.ones((4, 3))
Y3 = jnp.array([0, 1, 2, 0])                      # class indices for 3 classes
DENSE = layers.dense(3)
SERIAL = layers.serial(layers.dense(4), A.relu, layers.dense(2))
MLP = models.mlp([4, 3])                           # 2 features in, 3 classes out
XT = jnp.asarray(np.random.default_rng(0).standard_normal((10, 2)), jnp.float32)
YT = jnp.arange(10) % 3
PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
GRADS_BAD_SHAPE = {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}
GRADS_BROADCAST = {"w": jnp.ones((5, 3, 2)), "b": jnp.zeros(2)}
GRADS_INT = {"w": jnp.ones((3, 2), jnp.int32), "b": jnp.zeros(2, jnp.int32)}
PERCEPTRON_P = {"w": jnp.zeros(2), "b": jnp.zeros(())}
XOR_X = jnp.array([[0.0, 0], [0, 1], [1, 0], [1, 1]])
AND_Y = jnp.array([0, 0, 0, 1])
BP_X, BP_Y = jnp.ones((5, 2)), jnp.array([0, 1, 2, 0, 1])
GRADCHECK_FN = lambda p, x, y: losses.mse(p["w"] @ x, y)  # noqa: E731
GRADCHECK_P = {"w": jnp.ones((2, 3))}


# Built on first use, not at import: collecting the suite should not compile anything.
@functools.cache
def dense_params():
    return DENSE.init(KEY, (5,))


@functools.cache
def mlp_params():
    return MLP.init(KEY, (2,))


@functools.cache
def stacked():
    """Three stacked members, as init_ensemble gives them."""
    members = [MLP.init(k, (2,)) for k in jax.random.split(KEY, 3)]
    return jax.tree.map(lambda *a: jnp.stack(a), *members)


@functools.cache
def bp_params():
    return models.mlp([4, 3], activation="tanh").init(KEY, (2,))


@functools.cache
def blob_data():
    return datasets.blobs(KEY, 20)


def bx():
    return blob_data()[0]


def by():
    return blob_data()[1]


@functools.cache
def stats():
    return datasets.fit_standardizer(bx())


OPTIMIZERS = {"sgd": optimizers.sgd, "momentum": optimizers.momentum, "adagrad": optimizers.adagrad,
              "rmsprop": optimizers.rmsprop, "adam": optimizers.adam, "adamw": optimizers.adamw}
OTHER_STATE = {"sgd": optimizers.adam(0.1).init(PARAMS)}   # any other optimizer's state


_DEFAULT = object()


def _fit(**kw):
    args = dict(model=MLP, params=mlp_params(), optimizer=optimizers.sgd(0.1), x=XT, y=YT, key=KEY)
    args.update(kw)
    return training.fit(args.pop("model"), args.pop("params"), args.pop("optimizer"),
                        args.pop("x"), args.pop("y"), **args)


def _step(**kw):
    args = dict(params=mlp_params(), opt_state=optimizers.sgd(0.1).init(mlp_params()), x=XT, y=YT, model=MLP,
                optimizer=optimizers.sgd(0.1))
    args.update(kw)
    return training.train_step(args.pop("params"), args.pop("opt_state"), args.pop("x"),
                               args.pop("y"), **args)


def _jit(f, *args, **kwargs):
    """Call ``f`` under ``jax.jit`` (keyword arguments static): checks must fire at trace time."""
    return jax.jit(lambda *a: f(*a, **kwargs))(*args)


# --- the table ----------------------------------------------------------------------------

CASES = []


def case(id, call, exc, fn, arg, *, bug=None, pattern=None, marks=()):
    """One row: ``call()`` must raise exactly ``exc`` with "<fn>: <arg> must ...; got ...".

    ``fn`` and ``arg`` are regular expressions (layer names such as ``dense(3)`` are
    escaped by the caller). ``bug`` marks a row that fails today: a bug reported to the
    lead, expected to XPASS (and fail, strict) once it is fixed.
    """
    pattern = pattern or rf"^{fn}: {arg} must .+; got "
    if call.__code__.co_varnames[:1] == ("tmp",):
        uses_tmp(call)
    marks = list(marks) + ([pytest.mark.xfail(strict=True, reason=f"{bug}, reported to lead")] if bug else [])
    CASES.append(pytest.param(call, exc, pattern, id=id, marks=marks))


V, T = ValueError, TypeError
E = re.escape

# activations -----------------------------------------------------------------------------
for name in ("step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax", "log_softmax", "identity"):
    f = getattr(A, name)
    case(f"{name}-None", lambda f=f: f(None), T, name, "x")
    case(f"{name}-str", lambda f=f: f("abc"), T, name, "x")
    case(f"{name}-dict", lambda f=f: f({"a": 1.0}), T, name, "x")
case("prelu-alpha-shape", lambda: A.prelu(X43, jnp.ones(5)), V, "prelu", "alpha")
case("prelu-alpha-shape-jit", lambda: _jit(A.prelu, X43, jnp.ones(5)), V, "prelu", "alpha")
case("prelu-x-None", lambda: A.prelu(None, 0.25), T, "prelu", "x")
case("get-int", lambda: A.get(3), T, "get", "name")
case("get-unknown", lambda: A.get("swish"), V, "get", "name")
case("softmax-axis-out-of-range", lambda: A.softmax(X43, axis=5), V, "softmax", "axis")
case("log_softmax-axis-out-of-range", lambda: A.log_softmax(X43, axis=5), V, "log_softmax", "axis")
case("softmax-axis-str", lambda: A.softmax(X43, axis="a"), T, "softmax", "axis")
case("softmax-0d", lambda: A.softmax(1.0), V, "softmax", "x")
case("leaky_relu-slope-str", lambda: A.leaky_relu(X43, "a"), T, "leaky_relu", "negative_slope")
case("leaky_relu-slope-shape", lambda: A.leaky_relu(X43, jnp.ones(5)), V, "leaky_relu", "negative_slope")
case("elu-alpha-shape", lambda: A.elu(X43, jnp.ones(5)), V, "elu", "alpha")
case("elu-alpha-None", lambda: A.elu(X43, None), T, "elu", "alpha")
case("prelu-alpha-None", lambda: A.prelu(X43, None), T, "prelu", "alpha")

# initializers ----------------------------------------------------------------------------
case("normal-stddev-negative", lambda: initializers.normal(-1.0), V, "normal", "stddev")
case("normal-stddev-str", lambda: initializers.normal("a"), T, "normal", "stddev")
case("uniform-scale-None", lambda: initializers.uniform(None), T, "uniform", "scale")
case("variance_scaling-scale-0", lambda: initializers.variance_scaling(0.0, "fan_in", "uniform"),
     V, "variance_scaling", "scale")
case("variance_scaling-mode", lambda: initializers.variance_scaling(1.0, "fan", "uniform"),
     V, "variance_scaling", "mode")
case("variance_scaling-distribution", lambda: initializers.variance_scaling(1.0, "fan_in", "normal"),
     V, "variance_scaling", "distribution")
for name in ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal"):
    make = getattr(initializers, name)
    case(f"{name}-rank-1-shape", lambda make=make: make()(KEY, (3,)), V, "variance_scaling", "shape")
    case(f"{name}-zero-fan", lambda make=make: make()(KEY, (0, 3)), V, "variance_scaling", "shape")
case("glorot-int-dtype", lambda: initializers.glorot_uniform()(KEY, (3, 4), jnp.int32),
     V, "(glorot_uniform|variance_scaling)", "dtype")
case("normal-int-dtype", lambda: initializers.normal()(KEY, (3, 4), jnp.int32), V, "normal", "dtype")
case("glorot-key-None", lambda: initializers.glorot_uniform()(None, (3, 4)), T,
     "(glorot_uniform|variance_scaling)", "key")
case("zeros-negative-shape", lambda: initializers.zeros(KEY, (-1,)), V, "zeros", "shape")
case("ones-negative-shape", lambda: initializers.ones(KEY, (-1,)), V, "ones", "shape")

# layers and models -----------------------------------------------------------------------
case("dense-features-0", lambda: layers.dense(0), V, "dense", "features")
case("dense-features-float", lambda: layers.dense(2.5), V, "dense", "features")
case("dense-features-str", lambda: layers.dense("3"), V, "dense", "features")
case("dense-init-shape-None", lambda: DENSE.init(KEY, None), T, E("dense(3)"), "input_shape")
case("dense-init-shape-empty", lambda: DENSE.init(KEY, ()), V, E("dense(3)"), "input_shape")
case("dense-init-shape-zero", lambda: DENSE.init(KEY, (0,)), V, E("dense(3)"), "input_shape")
case("dense-apply-last-dim", lambda: DENSE.apply(dense_params(), jnp.ones((2, 4))), V, E("dense(3)"), "x")
case("dense-apply-last-dim-jit", lambda: _jit(DENSE.apply, dense_params(), jnp.ones((2, 4))),
     V, E("dense(3)"), "x")
case("dense-apply-0d", lambda: DENSE.apply(dense_params(), 1.0), V, E("dense(3)"), "x")
case("dense-apply-None", lambda: DENSE.apply(dense_params(), None), T, E("dense(3)"), "x")
case("dense-init-key-None", lambda: DENSE.init(None, (5,)), T, E("dense(3)"), "key")
case("dense-apply-params-None", lambda: DENSE.apply(None, jnp.ones((2, 5))), T, E("dense(3)"), "params")
case("dense-apply-params-empty", lambda: DENSE.apply({}, jnp.ones((2, 5))), V, E("dense(3)"), "params")
case("dense-apply-bias-shape",
     lambda: DENSE.apply({"w": dense_params()["w"], "b": jnp.ones(4)}, jnp.ones((2, 5))),
     V, E("dense(3)"), "params")
case("dense-apply-kernel-1d", lambda: DENSE.apply({"w": jnp.ones(5), "b": jnp.ones(3)}, jnp.ones((2, 5))),
     V, E("dense(3)"), "params")
case("prelu-layer-init_alpha-str", lambda: layers.prelu("a"), T, "prelu", "init_alpha")
case("prelu-layer-alpha-shape", lambda: layers.prelu().apply({"alpha": jnp.ones(5)}, X43),
     V, "prelu", "alpha")
case("prelu-layer-params-None", lambda: layers.prelu().apply(None, X43), T, "prelu", "params")
case("serial-empty", lambda: layers.serial(), V, "serial", "layers")
case("serial-not-a-layer", lambda: layers.serial(3), T, "serial", E("layers[0]"))
case("serial-init-shape-int", lambda: SERIAL.init(KEY, 3), T, "serial", "input_shape")
case("serial-apply-params-short", lambda: SERIAL.apply([{}], X43), V, "serial", "params")
case("serial-apply-wrong-x", lambda: SERIAL.apply(SERIAL.init(KEY, (3,)), jnp.ones((2, 7))),
     V, E("dense(4)"), "x")
case("mlp-features-empty", lambda: models.mlp([]), V, "mlp", "features")
case("mlp-features-int", lambda: models.mlp(3), V, "mlp", "features")
case("mlp-features-None", lambda: models.mlp(None), V, "mlp", "features")
case("mlp-features-zero", lambda: models.mlp([3, 0]), V, "mlp", E("features[1]"))
case("mlp-features-float", lambda: models.mlp([3, 2.0]), V, "mlp", E("features[1]"))
case("mlp-features-bool", lambda: models.mlp([3, True]), V, "mlp", E("features[1]"))
case("mlp-activation-unknown", lambda: models.mlp([3], activation="swish"), V, "mlp", "activation")
case("mlp-activation-int", lambda: models.mlp([3], activation=3), T, "mlp", "activation")
case("mlp-output_activation-unknown", lambda: models.mlp([3], output_activation="x"), V, "mlp",
     "output_activation")
case("default_w_init-unknown", lambda: models.default_w_init("swish"), V, "default_w_init", "activation")
case("mlp-init-shape-empty", lambda: MLP.init(KEY, ()), V, r"dense\(4\)", "input_shape")
case("mlp-apply-wrong-features", lambda: MLP.apply(mlp_params(), jnp.ones((2, 5))),
     V, E("mlp layer 0 (dense 4)"), "x")
case("mlp-apply-wrong-features-jit", lambda: _jit(MLP.apply, mlp_params(), jnp.ones((2, 5))), V,
     E("mlp layer 0 (dense 4)"), "x")
case("mlp-apply-x-str", lambda: MLP.apply(mlp_params(), "abc"), T, E("mlp layer 0 (dense 4)"), "x")
case("mlp-apply-params-dict", lambda: MLP.apply({"w": 1}, X43), V, "mlp", "params")
case("mlp-apply-params-short", lambda: MLP.apply(mlp_params()[:1], X43), V, "mlp", "params")
case("mlp-apply-layers-swapped", lambda: MLP.apply(mlp_params()[::-1], jnp.ones((4, 2))), V,
     "mlp", "params")
case("mlp-w_init-int", lambda: models.mlp([3], w_init=3), T, "mlp", "w_init")
case("mlp-dtype-str", lambda: models.mlp([3], dtype="foo"), T, "mlp", "dtype")
case("mlp-dtype-int", lambda: models.mlp([3], dtype=jnp.int32).init(KEY, (3,)), T, "mlp", "dtype")
case("mlp-init-shape-None", lambda: MLP.init(KEY, None), T, "mlp", "input_shape")
case("mlp-init-shape-str", lambda: MLP.init(KEY, "ab"), T, "mlp", "input_shape")
case("mlp-init-key-str", lambda: MLP.init("k", (2,)), T, "mlp", "key")
case("mlp-apply-missing-bias",
     lambda: MLP.apply([{"w": mlp_params()[0]["w"]}, mlp_params()[1]], jnp.ones((4, 2))),
     V, "mlp", "params")
case("mlp-apply-bias-shape",
     lambda: MLP.apply([{"w": mlp_params()[0]["w"], "b": jnp.ones(7)}, mlp_params()[1]], jnp.ones((4, 2))),
     V, "mlp( layer 0 \\(dense 4\\))?", "(params|b)")

# losses and metrics ------------------------------------------------------------------------
case("mse-shape", lambda: losses.mse(X43, jnp.ones((4, 2))), V, "mse", "targets")
case("mse-broadcastable-shape", lambda: losses.mse(X43, jnp.ones(3)), V, "mse", "targets")
case("mse-shape-jit", lambda: _jit(losses.mse, X43, jnp.ones((4, 2))), V, "mse", "targets")
case("mse-int-predictions", lambda: losses.mse(jnp.ones((4, 3), jnp.int32), X43), T, "mse", "predictions")
case("mse-None", lambda: losses.mse(None, X43), T, "mse", "predictions")
case("mse-targets-str", lambda: losses.mse(X43, "a"), T, "mse", "targets")
case("bce-shape", lambda: losses.binary_cross_entropy(jnp.ones(4), jnp.ones(3)),
     V, "binary_cross_entropy", "labels")
case("bce-shape-jit", lambda: _jit(losses.binary_cross_entropy, jnp.ones(4), jnp.ones(3)), V,
     "binary_cross_entropy", "labels")
case("bce-labels-2", lambda: losses.binary_cross_entropy(jnp.ones(4), jnp.array([0, 1, 2, 0])), V,
     "binary_cross_entropy", "labels")
case("bce-labels-negative", lambda: losses.binary_cross_entropy(jnp.ones(4), jnp.array([0, -1, 1, 0])), V,
     "binary_cross_entropy", "labels")
case("bce-int-logits", lambda: losses.binary_cross_entropy(jnp.ones(4, jnp.int32), jnp.ones(4)), T,
     "binary_cross_entropy", "logits")
case("bce-labels-nan", lambda: losses.binary_cross_entropy(jnp.ones(4), jnp.array([0, 1, jnp.nan, 0])), V,
     "binary_cross_entropy", "labels")
case("sce-float-labels", lambda: losses.softmax_cross_entropy(X43, Y3.astype(float)), T,
     "softmax_cross_entropy", "labels")
case("sce-one-hot-labels", lambda: losses.softmax_cross_entropy(X43, jax.nn.one_hot(Y3, 3)), T,
     "softmax_cross_entropy", "labels")
case("sce-labels-out-of-range", lambda: losses.softmax_cross_entropy(X43, jnp.array([0, 1, 3, 0])), V,
     "softmax_cross_entropy", "labels")
case("sce-labels-negative", lambda: losses.softmax_cross_entropy(X43, jnp.array([0, -1, 1, 0])), V,
     "softmax_cross_entropy", "labels")
case("sce-labels-shape", lambda: losses.softmax_cross_entropy(X43, Y3[:3]),
     V, "softmax_cross_entropy", "labels")
case("sce-labels-shape-jit", lambda: _jit(losses.softmax_cross_entropy, X43, Y3[:3]), V,
     "softmax_cross_entropy", "labels")
case("sce-0d-logits", lambda: losses.softmax_cross_entropy(jnp.float32(1), jnp.int32(0)), V,
     "softmax_cross_entropy", "logits")
case("sce-int-logits", lambda: losses.softmax_cross_entropy(jnp.ones((4, 3), jnp.int32), Y3), T,
     "softmax_cross_entropy", "logits")
case("sce-labels-None", lambda: losses.softmax_cross_entropy(X43, None), T, "softmax_cross_entropy", "labels")
case("accuracy-shape", lambda: metrics.accuracy(X43, jnp.array([0, 1])), V, "accuracy", "labels")
case("accuracy-None", lambda: metrics.accuracy(None, Y3), T, "accuracy", "logits")
case("accuracy-labels-str", lambda: metrics.accuracy(X43, "abc"), T, "accuracy", "labels")
case("accuracy-labels-out-of-range", lambda: metrics.accuracy(X43, jnp.array([0, 1, 7, 0])), V,
     "accuracy", "labels")
case("accuracy-float-labels", lambda: metrics.accuracy(X43, jnp.array([0.0, 0.5, 1.0, 2.0])), T,
     "accuracy", "labels")

# optimizers --------------------------------------------------------------------------------
for name, make in OPTIMIZERS.items():
    case(f"{name}-lr-negative", lambda make=make: make(-1.0), V, name, "learning_rate")
    case(f"{name}-lr-nan", lambda make=make: make(float("nan")), V, name, "learning_rate")
    case(f"{name}-lr-inf", lambda make=make: make(float("inf")), V, name, "learning_rate")
    case(f"{name}-lr-None", lambda make=make: make(None), T, name, "learning_rate")
    case(f"{name}-lr-str", lambda make=make: make("0.1"), T, name, "learning_rate")
    case(f"{name}-lr-vector", lambda make=make: make(jnp.array([0.1, 0.2])), V, name, "learning_rate")
    for what, schedule in [("str", lambda c: "abc"), ("vector", lambda c: jnp.ones(2)),
                           ("complex", lambda c: jnp.complex64(0.1))]:
        case(f"{name}-schedule-returns-{what}",
             lambda make=make, schedule=schedule: jax.jit(make(schedule).update)(PARAMS, make(0.1).init(PARAMS),
                                                                                 PARAMS),
             T, name, "learning_rate")
    case(f"{name}-init-int-params", lambda make=make: make(0.1).init({"w": jnp.ones(3, jnp.int32)}), T,
         name, "params")
    case(f"{name}-init-str", lambda make=make: make(0.1).init("abc"), T, name, "params")
    case(f"{name}-update-int-grads",
         lambda make=make: make(0.1).update(GRADS_INT, make(0.1).init(PARAMS), PARAMS),
         T, name, "grads")
    case(f"{name}-update-state-None", lambda make=make: make(0.1).update(PARAMS, None, PARAMS),
         T, name, "state")
    other = OTHER_STATE.get(name, optimizers.sgd(0.1).init(PARAMS))
    case(f"{name}-update-other-optimizers-state",
         lambda make=make, other=other: make(0.1).update(PARAMS, other, PARAMS), T, name, "state")
    if name == "sgd":  # SGD's state holds no tree to compare grads with
        continue
    case(f"{name}-update-grads-missing-leaf",
         lambda make=make: make(0.1).update({"w": PARAMS["w"]}, make(0.1).init(PARAMS), PARAMS),
         V, name, "grads")
    case(f"{name}-update-grads-list",
         lambda make=make: make(0.1).update(list(PARAMS.values()), make(0.1).init(PARAMS), PARAMS),
         V, name, "grads")
    case(f"{name}-update-grads-shape",
         lambda make=make: make(0.1).update(GRADS_BAD_SHAPE, make(0.1).init(PARAMS), PARAMS),
         V, name, "grads")
    case(f"{name}-update-grads-broadcast",
         lambda make=make: make(0.1).update(GRADS_BROADCAST, make(0.1).init(PARAMS), PARAMS),
         V, name, "grads")
    case(f"{name}-update-grads-shape-jit",
         lambda make=make: jax.jit(make(0.1).update)(GRADS_BAD_SHAPE, make(0.1).init(PARAMS), PARAMS),
         V, name, "grads")
case("momentum-beta-1", lambda: optimizers.momentum(0.1, beta=1.0), V, "momentum", "beta")
case("momentum-beta-negative", lambda: optimizers.momentum(0.1, beta=-0.1), V, "momentum", "beta")
case("momentum-nesterov-int", lambda: optimizers.momentum(0.1, nesterov=1), T, "momentum", "nesterov")
case("adam-b1-1", lambda: optimizers.adam(0.1, b1=1.0), V, "adam", "b1")
case("adam-b2-above-1", lambda: optimizers.adam(0.1, b2=1.5), V, "adam", "b2")
case("adam-eps-0", lambda: optimizers.adam(0.1, eps=0.0), V, "adam", "eps")
case("adam-b1-str", lambda: optimizers.adam(0.1, b1="a"), T, "adam", "b1")
case("adam-b1-schedule", lambda: optimizers.adam(0.1, b1=lambda c: 0.9), T, "adam", "b1")
case("adam-eps-underflows-float16", lambda: optimizers.adam(0.1).init({"w": jnp.ones(3, jnp.float16)}), V,
     "adam", "eps")
case("rmsprop-eps-underflows-float16",
     lambda: optimizers.rmsprop(0.1).init({"w": jnp.ones(3, jnp.float16)}), V,
     "rmsprop", "eps")
case("adamw-weight_decay-negative", lambda: optimizers.adamw(0.1, weight_decay=-1.0),
     V, "adamw", "weight_decay")
case("adamw-update-params-None",
     lambda: optimizers.adamw(0.1).update(PARAMS, optimizers.adamw(0.1).init(PARAMS)),
     V, "adamw", "params")
case("adamw-update-params-shape",
     lambda: optimizers.adamw(0.1).update(PARAMS, optimizers.adamw(0.1).init(PARAMS), GRADS_BAD_SHAPE),
     V, "adamw", "params")
case("adagrad-initial_accumulator_value-negative",
     lambda: optimizers.adagrad(0.1, initial_accumulator_value=-1.0),
     V, "adagrad", "initial_accumulator_value")
case("rmsprop-decay-1", lambda: optimizers.rmsprop(0.1, decay=1.0), V, "rmsprop", "decay")
case("apply_updates-missing-leaf", lambda: optimizers.apply_updates(PARAMS, {"w": PARAMS["w"]}), V,
     "apply_updates", "updates")
case("apply_updates-shape", lambda: optimizers.apply_updates(PARAMS, GRADS_BAD_SHAPE),
     V, "apply_updates", "updates")
case("apply_updates-broadcast", lambda: optimizers.apply_updates(PARAMS, GRADS_BROADCAST), V,
     "apply_updates", "updates")
case("apply_updates-shape-jit", lambda: jax.jit(optimizers.apply_updates)(PARAMS, GRADS_BAD_SHAPE), V,
     "apply_updates", "updates")
case("apply_updates-None", lambda: optimizers.apply_updates(PARAMS, None), V, "apply_updates", "updates")

# training ------------------------------------------------------------------------------------
case("fit-model-None", lambda: _fit(model=None), T, "fit", "model")
case("fit-optimizer-None", lambda: _fit(optimizer=None), T, "fit", "optimizer")
case("fit-optimizer-factory", lambda: _fit(optimizer=optimizers.sgd), T, "fit", "optimizer")
case("fit-loss-str", lambda: _fit(loss="mse"), T, "fit", "loss")
case("fit-x-None", lambda: _fit(x=None), T, "fit", "x")
case("fit-x-str", lambda: _fit(x="abc"), T, "fit", "x")
case("fit-x-wrong-features", lambda: _fit(x=jnp.ones((10, 5))), V, "fit", "x",
     pattern=r"^fit: x does not fit the model: .*x must .+; got ")
case("fit-x-rank-1", lambda: _fit(x=jnp.ones(10)), V, "fit", "x",
     pattern=r"^fit: x does not fit the model: .*x must .+; got ")
case("fit-x-empty", lambda: _fit(x=jnp.ones((0, 2)), y=jnp.ones(0, int)), V, "fit", "x")
case("fit-params-wrong-input-size", lambda: _fit(params=MLP.init(KEY, (3,))), V, "fit", "x",
     pattern=r"^fit: x does not fit the model: .*x must .+; got ")
case("fit-y-length", lambda: _fit(y=YT[:5]), V, "fit", "y")
case("fit-y-float", lambda: _fit(y=YT.astype(float)), T, "(fit|softmax_cross_entropy)", "(y|labels)")
case("fit-y-one-hot", lambda: _fit(y=jax.nn.one_hot(YT, 3)), T, "(fit|softmax_cross_entropy)", "(y|labels)")
case("fit-y-out-of-range", lambda: _fit(y=YT + 1), V, "fit", "y")
case("fit-y-negative", lambda: _fit(y=YT - 1), V, "fit", "y")
case("fit-bce-labels-2",
     lambda: _fit(model=models.mlp([4, 1]), params=models.mlp([4, 1]).init(KEY, (2,)),
                  loss=losses.binary_cross_entropy), V, "fit", "y")
case("fit-mse-target-shape", lambda: _fit(loss=losses.mse), V, "(fit|mse)", "(y|targets)")
case("fit-epochs-0", lambda: _fit(epochs=0), V, "fit", "epochs")
case("fit-epochs-float", lambda: _fit(epochs=1.5), V, "fit", "epochs")
case("fit-batch_size-0", lambda: _fit(batch_size=0), V, "fit", "batch_size")
case("fit-key-None-with-shuffle", lambda: _fit(key=None), V, "fit", "key")
case("fit-eval_data-triple", lambda: _fit(eval_data=(XT, YT, YT)), T, "fit", "eval_data")
case("fit-eval_data-y-out-of-range", lambda: _fit(eval_data=(XT, YT + 5)), V, "fit", "eval_data y")
case("fit-eval_data-y-length", lambda: _fit(eval_data=(XT, YT[:3])), V, "fit", "eval_data y")
case("fit-opt_state-other-optimizer", lambda: _fit(opt_state=optimizers.adam(0.1).init(mlp_params())),
     V, "fit", "opt_state")
case("fit-initial-int", lambda: _fit(initial=3), T, "fit", "initial")
case("fit-checkpoint_every-0", lambda: _fit(checkpoint="unused.ckpt", checkpoint_every=0), V, "fit",
     "checkpoint_every")
case("fit-int-params", lambda: _fit(params=jax.tree.map(lambda a: a.astype(int), mlp_params())),
     T, "(fit|sgd)", r"params\S*")
case("fit-key-str", lambda: _fit(key="k"), T, "fit", "key")
case("fit-key-int", lambda: _fit(key=3), T, "fit", "key")
case("fit-key-batch", lambda: _fit(key=jax.random.split(KEY, 2)), T, "fit", "key")
case("fit-params-bad-leaf", lambda: _fit(params={"w": 1}), V, "fit", "params",
     pattern=r"^fit: .*params.* must .+; got ")
case("fit-eval_data-x-wrong-features", lambda: _fit(eval_data=(jnp.ones((5, 7)), YT[:5])), V, "fit",
     "eval_data x", pattern=r"^fit: eval_data x does not fit the model: .*x must .+; got ")
case("fit-metrics-list", lambda: _fit(metrics=[1, 2]), T, "fit", "metrics")
case("fit-metrics-not-callable", lambda: _fit(eval_data=(XT, YT), metrics={"a": 3}), T, "fit", "metrics")
case("fit-checkpoint-int", lambda: _fit(checkpoint=3), T, "fit", "checkpoint")
case("fit-nan_guard-str", lambda: _fit(nan_guard="no"), T, "fit", "nan_guard")
case("fit-shuffle-None", lambda: _fit(shuffle=None), T, "fit", "shuffle")
case("fit-shuffle-unknown-method", lambda: _fit(shuffle="random"), V, "fit", "shuffle")
case("fit-early_stopping-str", lambda: _fit(early_stopping="eval_loss"), T, "fit", "early_stopping")
case("fit-early_stopping-eval-monitor-without-eval_data",
     lambda: _fit(early_stopping=training.EarlyStopping("eval_loss")), V, "fit", "early_stopping")
case("fit-early_stopping-unknown-monitor", lambda: _fit(
    eval_data=(XT, YT), early_stopping=training.EarlyStopping("eval_f1")), V, "fit", "early_stopping")
case("fit-on_epoch-int", lambda: _fit(on_epoch=3), T, "fit", "on_epoch")
case("fit-accumulation_steps-0", lambda: _fit(accumulation_steps=0), V, "fit", "accumulation_steps")
case("fit_ensemble-accumulation_steps-float", lambda: training.fit_ensemble(
    MLP, training.init_ensemble(MLP, jax.random.split(KEY, 2), (2,)), optimizers.sgd(0.1), XT, YT,
    key=KEY, accumulation_steps=1.5), V, "fit_ensemble", "accumulation_steps")
case("EarlyStopping-monitor-int", lambda: training.EarlyStopping(3), T, "EarlyStopping", "monitor")
case("EarlyStopping-patience-negative", lambda: training.EarlyStopping(patience=-1), V, "EarlyStopping",
     "patience")
case("EarlyStopping-min_delta-negative", lambda: training.EarlyStopping(min_delta=-0.1), V,
     "EarlyStopping", "min_delta")
case("EarlyStopping-restore_best-str", lambda: training.EarlyStopping(restore_best="yes"), T,
     "EarlyStopping", "restore_best")
case("EarlyStopping-mode-up", lambda: training.EarlyStopping(mode="up"), V, "EarlyStopping", "mode")
case("fit_batches-batches-int", lambda: training.fit_batches(MLP, mlp_params(), optimizers.sgd(0.1), 3),
     T, "fit_batches", "batches")
case("fit_batches-batch-not-a-pair", lambda: training.fit_batches(MLP, mlp_params(), optimizers.sgd(0.1),
                                                                   [XT]), T, "fit_batches", r"batches\[0\]")
case("fit_batches-steps_per_call-0", lambda: training.fit_batches(
    MLP, mlp_params(), optimizers.sgd(0.1), [(XT, YT)], steps_per_call=0), V, "fit_batches", "steps_per_call")
case("fit_batches-steps-float", lambda: training.fit_batches(
    MLP, mlp_params(), optimizers.sgd(0.1), [(XT, YT)], steps=1.5), V, "fit_batches", "steps")
case("fit_batches-y-out-of-range", lambda: training.fit_batches(
    MLP, mlp_params(), optimizers.sgd(0.1), [(XT, YT + 1)]), V, "fit_batches", "y")
case("compilation_cache.enable-path-int", lambda: compilation_cache.enable(3), T,
     "compilation_cache.enable", "path")
case("compilation_cache.enable-path-None-while-off", lambda: compilation_cache.enable(None), V,
     "compilation_cache.enable", "path")
case("epoch_order-key-int", lambda: training.epoch_order(3, 0, 5), T, "epoch_order", "key")
case("epoch_order-n-zero", lambda: training.epoch_order(KEY, 0, 0), V, "epoch_order", "n")
case("epoch_order-n-float", lambda: training.epoch_order(KEY, 0, 5.0), V, "epoch_order", "n")
case("epoch_order-method-unknown", lambda: training.epoch_order(KEY, 0, 5, method="shuffle"), V,
     "epoch_order", "method")
case("evaluate-model-None", lambda: training.evaluate(None, mlp_params(), XT, YT), T, "evaluate", "model")
case("evaluate-loss-None", lambda: training.evaluate(MLP, mlp_params(), XT, YT, loss=None),
     T, "evaluate", "loss")
case("evaluate-batch_size-0", lambda: training.evaluate(MLP, mlp_params(), XT, YT, batch_size=0), V,
     "evaluate", "batch_size")
case("evaluate-x-wrong-features", lambda: training.evaluate(MLP, mlp_params(), jnp.ones((10, 5)), YT), V,
     "evaluate", "x", pattern=r"^evaluate: x does not fit the model: .*x must .+; got ")
case("evaluate-y-float", lambda: training.evaluate(MLP, mlp_params(), XT, YT.astype(float)), T,
     "(evaluate|softmax_cross_entropy)", "(y|labels)")
case("evaluate-y-out-of-range", lambda: training.evaluate(MLP, mlp_params(), XT, YT + 5), V, "evaluate", "y")
case("evaluate-metrics-int", lambda: training.evaluate(MLP, mlp_params(), XT, YT, metrics=3),
     T, "evaluate", "metrics")
case("train_step-model-None", lambda: _step(model=None), T, "train_step", "model")
case("train_step-x-wrong-features", lambda: _step(x=jnp.ones((10, 5))), V, E("mlp layer 0 (dense 4)"), "x")
case("train_step-x-wrong-features-jit",
     lambda: jax.jit(lambda p, s, x, y: _step(params=p, opt_state=s, x=x, y=y))(
         mlp_params(), optimizers.sgd(0.1).init(mlp_params()), jnp.ones((10, 5)), YT),
         V, E("mlp layer 0 (dense 4)"), "x")
case("train_step-y-float", lambda: _step(y=YT.astype(float)), T, "softmax_cross_entropy", "labels")
case("train_step-optimizer-None", lambda: _step(optimizer=None), T, "train_step", "optimizer")
case("train_step-loss-None", lambda: _step(loss=None), T, "train_step", "loss")
case("make_train_step-model-None", lambda: training.make_train_step(None, optimizers.sgd(0.1)), T,
     "make_train_step", "model")
case("make_train_step-optimizer-None", lambda: training.make_train_step(MLP, None), T, "make_train_step",
     "optimizer")
case("make_train_step-loss-int", lambda: training.make_train_step(MLP, optimizers.sgd(0.1), 3), T,
     "make_train_step", "loss")
case("make_train_step-x-wrong-features",
     lambda: training.make_train_step(MLP, optimizers.sgd(0.1), donate=False)(
         mlp_params(), optimizers.sgd(0.1).init(mlp_params()), jnp.ones((10, 5)), YT),
         V, E("mlp layer 0 (dense 4)"), "x")
case("make_train_step-donate-str", lambda: training.make_train_step(MLP, optimizers.sgd(0.1), donate="x"), T,
     "make_train_step", "donate")
case("init_ensemble-model-None", lambda: training.init_ensemble(None, jax.random.split(KEY, 3), (2,)), T,
     "init_ensemble", "model")
case("init_ensemble-input_shape-zero", lambda: training.init_ensemble(MLP, jax.random.split(KEY, 3), (0,)), V,
     r"dense\(4\)", "input_shape")
case("init_ensemble-single-key", lambda: training.init_ensemble(MLP, KEY, (2,)), V, "init_ensemble", "keys")
case("init_ensemble-keys-None", lambda: training.init_ensemble(MLP, None, (2,)), T, "init_ensemble", "keys")
case("init_ensemble-input_shape-None", lambda: training.init_ensemble(MLP, jax.random.split(KEY, 3), None), T,
     "init_ensemble", "input_shape")
def _ensemble(params=_DEFAULT, x=XT, y=YT, optimizer=_DEFAULT):
    params = stacked() if params is _DEFAULT else params
    optimizer = optimizers.sgd(0.1) if optimizer is _DEFAULT else optimizer
    return training.fit_ensemble(MLP, params, optimizer, x, y, key=KEY)


def _sweep(hyperparams=jnp.array([0.1, 0.2]), x=XT, make_optimizer=optimizers.sgd, **kw):
    params = kw.pop("params", None) or mlp_params()
    return training.fit_sweep(MLP, params, make_optimizer, hyperparams, x, YT, key=KEY, **kw)


def _parallel(x=XT, y=YT, **kw):
    return parallel.fit(MLP, mlp_params(), optimizers.sgd(0.1), x, y, key=KEY, **kw)


case("fit_ensemble-unstacked-params", lambda: _ensemble(mlp_params()), V, "fit_ensemble", "params")
case("fit_ensemble-ragged-members",
     lambda: _ensemble([stacked()[0], jax.tree.map(lambda a: a[:2], stacked()[1])]),
     V, "fit_ensemble", "params")
case("fit_ensemble-x-wrong-features", lambda: _ensemble(x=jnp.ones((10, 5))), V, "fit_ensemble", "x",
     pattern=r"^fit_ensemble: x does not fit the model: .*x must .+; got ")
case("fit_ensemble-y-out-of-range", lambda: _ensemble(y=YT + 5), V, "fit_ensemble", "y")
case("fit_ensemble-optimizer-None", lambda: _ensemble(optimizer=None), T, "fit_ensemble", "optimizer")
case("fit_sweep-make_optimizer-None", lambda: _sweep(make_optimizer=None), T, "fit_sweep", "make_optimizer")
case("fit_sweep-stacked-count-mismatch", lambda: _sweep(params=stacked(), stacked_params=True),
     V, "fit_sweep", "params")
case("fit_sweep-x-wrong-features", lambda: _sweep(x=jnp.ones((10, 5))), V, "fit_sweep", "x",
     pattern=r"^fit_sweep: x does not fit the model: .*x must .+; got ")
case("fit_sweep-hyperparams-scalar", lambda: _sweep(0.1), V, "fit_sweep", "hyperparams")
case("fit_sweep-hyperparams-str", lambda: _sweep("a"), T, "fit_sweep", "hyperparams",
     marks=[pytest.mark.filterwarnings("ignore:Data type alias:DeprecationWarning")])
case("fit_sweep-negative-learning-rate", lambda: _sweep(jnp.array([-0.1, 0.2])),
     V, "(fit_sweep|sgd)", "(hyperparams|learning_rate)")
case("parallel.fit-batch_size-0", lambda: _parallel(batch_size=0), V, E("parallel.fit"), "batch_size")
case("parallel.fit-devices-empty", lambda: _parallel(devices=[]), V, "data_mesh", "devices")
case("parallel.fit-y-out-of-range", lambda: _parallel(y=YT + 5), V, E("parallel.fit"), "y")
case("parallel.fit-x-wrong-features", lambda: _parallel(x=jnp.ones((10, 5))), V, E("parallel.fit"), "x",
     pattern=r"^parallel\.fit: x does not fit the model: .*x must .+; got ")
case("parallel.fit-devices-None-entry", lambda: _parallel(devices=[None]),
     T, "(parallel.fit|data_mesh)", "devices")
case("parallel.fit-local_data-str", lambda: _parallel(local_data="yes"), T, E("parallel.fit"), "local_data")
case("data_mesh-int", lambda: parallel.data_mesh(3), T, "data_mesh", "devices")
case("parallel.fit_batches-batch_size-keyword", lambda: parallel.fit_batches(
    MLP, mlp_params(), optimizers.sgd(0.1), [(XT, YT)], batch_size=8), T, E("parallel.fit_batches"), "batch_size")

# perceptron ------------------------------------------------------------------------------------
case("perceptron.init-n_features-0", lambda: perceptron.init(0), V, E("perceptron.init"), "n_features")
case("perceptron.init-n_features-float", lambda: perceptron.init(2.0), V, E("perceptron.init"), "n_features")
case("perceptron.init-dtype-int", lambda: perceptron.init(2, jnp.int32), T, E("perceptron.init"), "dtype")
case("perceptron.init-dtype-str", lambda: perceptron.init(2, "foo"), T, E("perceptron.init"), "dtype")
case("perceptron.predict-x-features", lambda: perceptron.predict(PERCEPTRON_P, jnp.ones((4, 3))), V,
     E("perceptron.predict"), "x")
case("perceptron.predict-x-features-jit",
     lambda: jax.jit(perceptron.predict)(PERCEPTRON_P, jnp.ones((4, 3))), V,
     E("perceptron.predict"), "x")
case("perceptron.predict-x-None", lambda: perceptron.predict(PERCEPTRON_P, None),
     T, E("perceptron.predict"), "x")
case("perceptron.predict-params-None", lambda: perceptron.predict(None, XOR_X),
     T, E("perceptron.predict"), "params")
case("perceptron.predict-params-extra-key", lambda: perceptron.predict({**PERCEPTRON_P, "c": 1}, XOR_X), T,
     E("perceptron.predict"), "params")
case("perceptron.predict-int-w",
     lambda: perceptron.predict({"w": jnp.ones(2, int), "b": jnp.zeros(())}, XOR_X),
     T, E("perceptron.predict"), E('params["w"]'))
case("perceptron.predict-w-2d",
     lambda: perceptron.predict({"w": jnp.ones((2, 1)), "b": jnp.zeros(())}, XOR_X),
     V, E("perceptron.predict"), "params")
case("perceptron.fit-x-rank-1", lambda: perceptron.fit(PERCEPTRON_P, jnp.ones(2), AND_Y),
     V, E("perceptron.fit"), "x")
case("perceptron.fit-x-rank-3", lambda: perceptron.fit(PERCEPTRON_P, jnp.ones((4, 1, 2)), AND_Y), V,
     E("perceptron.fit"), "x")
case("perceptron.fit-x-str", lambda: perceptron.fit(PERCEPTRON_P, "abcd", AND_Y), T, E("perceptron.fit"), "x")
case("perceptron.fit-y-length", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y[:3]),
     V, E("perceptron.fit"), "y")
case("perceptron.fit-y-2", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y * 2),
     V, E("perceptron.fit"), "y")
case("perceptron.fit-y-minus-1", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y * 2 - 1), V,
     E("perceptron.fit"), "y")
case("perceptron.fit-y-fraction", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y * 0.5), V,
     E("perceptron.fit"), "y")
case("perceptron.fit-y-nan", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, jnp.array([0.0, jnp.nan, 0, 1])), V,
     E("perceptron.fit"), "y")
case("perceptron.fit-y-None", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, None), T, E("perceptron.fit"), "y")
case("perceptron.fit-lr-0", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y, learning_rate=0.0), V,
     E("perceptron.fit"), "learning_rate")
case("perceptron.fit-lr-inf",
     lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y, learning_rate=float("inf")), V,
     E("perceptron.fit"), "learning_rate")
case("perceptron.fit-lr-str", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y, learning_rate="a"), T,
     E("perceptron.fit"), "learning_rate")
case("perceptron.fit-lr-vector",
     lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y, learning_rate=jnp.ones(3)), V,
     E("perceptron.fit"), "learning_rate")
case("perceptron.fit-max_epochs-0", lambda: perceptron.fit(PERCEPTRON_P, XOR_X, AND_Y, max_epochs=0), V,
     E("perceptron.fit"), "max_epochs")

# backprop --------------------------------------------------------------------------------------
def _grads(params=_DEFAULT, x=BP_X, y=BP_Y, activation="tanh", loss="softmax_cross_entropy"):
    params = bp_params() if params is _DEFAULT else params
    return backprop.mlp_grads(params, x, y, activation=activation, loss=loss)


case("mlp_grads-activation-unknown", lambda: _grads(activation="swish"), V, "mlp_grads", "activation")
case("mlp_grads-activation-softmax", lambda: _grads(activation="softmax"), V, "mlp_grads", "activation")
case("mlp_grads-activation-None", lambda: _grads(activation=None), V, "mlp_grads", "activation")
case("mlp_grads-loss-unknown", lambda: _grads(loss="hinge"), V, "mlp_grads", "loss")
case("mlp_grads-params-None", lambda: _grads(params=None), V, "mlp_grads", "params")
case("mlp_grads-params-dict", lambda: _grads(params=bp_params()[0]), V, "mlp_grads", "params")
case("mlp_grads-prelu-without-alpha", lambda: _grads(activation="prelu"), V, "mlp_grads", "params")
case("mlp_grads-bias-shape",
     lambda: _grads(params=[{"w": jnp.ones((2, 4)), "b": jnp.ones(5)}, bp_params()[1]]), V,
     "mlp_grads", E("params[0]"))
case("mlp_grads-x-None", lambda: _grads(x=None), T, "mlp_grads", "x")
case("mlp_grads-x-features", lambda: _grads(x=jnp.ones((5, 3))), V, E("mlp_grads layer 0"), "x")
case("mlp_grads-x-features-jit",
     lambda: jax.jit(lambda p, x, y: _grads(p, x, y))(bp_params(), jnp.ones((5, 3)), BP_Y),
     V, E("mlp_grads layer 0"), "x")
case("mlp_grads-y-float", lambda: _grads(y=BP_Y.astype(float)), T, "mlp_grads", "y")
case("mlp_grads-y-out-of-range", lambda: _grads(y=BP_Y + 3), V, "mlp_grads", "y")
case("mlp_grads-y-length", lambda: _grads(y=BP_Y[:3]), V, "mlp_grads", "y")
case("mlp_grads-mse-target-shape", lambda: _grads(loss="mse"), V, "mlp_grads", "y")
case("derivative-unknown", lambda: backprop.derivative("swish"), V, "derivative", "name")
case("derivative-prelu", lambda: backprop.derivative("prelu"), V, "derivative", "name")

# diagnostics -----------------------------------------------------------------------------------
def _gradcheck(fn=GRADCHECK_FN, params=GRADCHECK_P, *args, **kw):
    args = args or (jnp.ones(3), jnp.ones(2))
    return diagnostics.check_gradients(fn, params, *args, **kw)


case("check_gradients-fn-vector", lambda: _gradcheck(lambda p, x, y: p["w"] @ x),
     V, "check_gradients", "fn")
case("check_gradients-int-params", lambda: _gradcheck(params={"w": jnp.ones((2, 3), int)}),
     T, "check_gradients", E("params['w']"))
case("check_gradients-eps-0", lambda: _gradcheck(eps=0.0), V, "check_gradients", "eps")
case("check_gradients-rtol-negative", lambda: _gradcheck(rtol=-1.0), V, "check_gradients", "rtol")
case("check_gradients-max_elements-0", lambda: _gradcheck(max_elements=0), V, "check_gradients",
     "max_elements")
case("check_gradients-grad_fn-structure", lambda: _gradcheck(grad_fn=lambda p, x, y: [p["w"]]),
     V, "check_gradients", "grad_fn")
case("check_gradients-fn-None", lambda: _gradcheck(None), T, "check_gradients", "fn")
case("check_gradients-grad_fn-int", lambda: _gradcheck(grad_fn=3), T, "check_gradients", "grad_fn")
case("check_gradients-grad_fn-leaf-shape", lambda: _gradcheck(grad_fn=lambda p, x, y: {"w": jnp.ones(3)}),
     V, "check_gradients", "grad_fn")
case("check_gradients-params-None", lambda: _gradcheck(params=None), T, "check_gradients", "params")
case("layer_grad_norms-None", lambda: diagnostics.layer_grad_norms(None), V, "layer_grad_norms", "grads")
case("layer_grad_norms-dict", lambda: diagnostics.layer_grad_norms({"w": jnp.ones((2, 3))}), V,
     "layer_grad_norms", "grads")
case("layer_grad_norms-empty", lambda: diagnostics.layer_grad_norms([]), V, "layer_grad_norms", "grads")
case("layer_grad_norms-w-str", lambda: diagnostics.layer_grad_norms([{"w": "abc"}]),
     T, "layer_grad_norms", "grads")
case("layer_grad_norms-include_bias-str",
     lambda: diagnostics.layer_grad_norms([{"w": jnp.ones((2, 3))}], include_bias="x"),
     T, "layer_grad_norms", "include_bias")
case("grad_norms_fn-None", lambda: diagnostics.grad_norms_fn(None), T, "grad_norms_fn", "loss_fn")
case("vanishing_gradient_report-depth-1", lambda: diagnostics.vanishing_gradient_report(KEY, depth=1), V,
     "vanishing_gradient_report", "depth")
case("vanishing_gradient_report-depth-float",
     lambda: diagnostics.vanishing_gradient_report(KEY, depth=2.5), V,
     "vanishing_gradient_report", "depth")
case("vanishing_gradient_report-width-0", lambda: diagnostics.vanishing_gradient_report(KEY, width=0), V,
     "vanishing_gradient_report", "width")
case("vanishing_gradient_report-activations-str",
     lambda: diagnostics.vanishing_gradient_report(KEY, activations="relu"), V, "vanishing_gradient_report",
     "activations")
case("vanishing_gradient_report-loss-unknown",
     lambda: diagnostics.vanishing_gradient_report(KEY, loss="hinge"), V,
     "vanishing_gradient_report", "loss")
case("vanishing_gradient_report-x-without-y",
     lambda: diagnostics.vanishing_gradient_report(KEY, x=jnp.ones((4, 3))),
     V, "vanishing_gradient_report", "y")
case("vanishing_gradient_report-int-x",
     lambda: diagnostics.vanishing_gradient_report(KEY, x=jnp.ones((4, 3), int), y=jnp.ones(4, int)), T,
     "vanishing_gradient_report", "x")
case("vanishing_gradient_report-y-length",
     lambda: diagnostics.vanishing_gradient_report(KEY, x=jnp.ones((4, 3)), y=jnp.ones(3, int)), V,
     "vanishing_gradient_report", "y")
case("vanishing_gradient_report-batch_size-0",
     lambda: diagnostics.vanishing_gradient_report(KEY, batch_size=0),
     V, "vanishing_gradient_report", "batch_size")
case("vanishing_gradient_report-key-None", lambda: diagnostics.vanishing_gradient_report(None), T,
     "vanishing_gradient_report", "key")
case("vanishing_gradient_report-x-rank-1",
     lambda: diagnostics.vanishing_gradient_report(KEY, x=jnp.ones(4), y=jnp.ones(4, int)), V,
     "vanishing_gradient_report", "x")
case("vanishing_gradient_report-bce-labels-2",
     lambda: diagnostics.vanishing_gradient_report(KEY, x=jnp.ones((4, 3)), y=2 * jnp.ones(4, int),
                                                   depth=2, width=2, activations=("relu",)),
     V, "(vanishing_gradient_report|binary_cross_entropy)", "(y|labels)")

# checkpoint (CheckpointError is a ValueError; its own tests fuzz load) ----------------------------
CKPT_TREE = {"w": jnp.ones((2, 3)), "b": [jnp.zeros(3, jnp.bfloat16), 3, None], "key": KEY}


def uses_tmp(call):
    """Mark a row whose call takes pytest's ``tmp_path``."""
    call.uses_tmp = True
    return call


def _saved(tmp, tree=CKPT_TREE):
    path = tmp / "a.ckpt"
    checkpoint.save(path, tree)
    return path


def _written(tmp, data: bytes):
    path = tmp / "file"
    path.write_bytes(data)
    return path


case("checkpoint.save-path-None", lambda tmp: checkpoint.save(None, CKPT_TREE),
     T, E("checkpoint.save"), "path")
case("checkpoint.save-path-int", lambda tmp: checkpoint.save(3, CKPT_TREE), T, E("checkpoint.save"), "path")
case("checkpoint.save-object-leaf", lambda tmp: checkpoint.save(tmp / "b", {"a": object()}), T,
     E("checkpoint.save"), "tree")
case("checkpoint.save-function-leaf", lambda tmp: checkpoint.save(tmp / "b", {"a": len}), T,
     E("checkpoint.save"), "tree")
case("checkpoint.save-int-dict-key", lambda tmp: checkpoint.save(tmp / "b", {1: jnp.ones(2)}), T,
     E("checkpoint.save"), "tree")
case("checkpoint.save-string-array", lambda tmp: checkpoint.save(tmp / "b", np.array(["a"])), T,
     E("checkpoint.save"), "tree")
case("checkpoint.save-tracer", lambda tmp: jax.jit(lambda a: checkpoint.save(tmp / "b", a))(jnp.ones(2)), T,
     E("checkpoint.save"), "tree")
case("checkpoint.load-path-None", lambda tmp: checkpoint.load(None), T, E("checkpoint.load"), "path")
case("checkpoint.load-path-bytes", lambda tmp: checkpoint.load(b"a.ckpt"), T, E("checkpoint.load"), "path")
case("checkpoint.load-like-shape",
     lambda tmp: checkpoint.load(_saved(tmp), like={**CKPT_TREE, "w": jnp.ones((3, 2))}),
     checkpoint.CheckpointError, E("checkpoint.load"), "like")
case("checkpoint.load-like-dtype",
     lambda tmp: checkpoint.load(_saved(tmp), like={**CKPT_TREE, "w": jnp.ones((2, 3), jnp.float16)}),
     checkpoint.CheckpointError, E("checkpoint.load"), "like")
case("checkpoint.load-like-keys", lambda tmp: checkpoint.load(_saved(tmp), like={"w": 1}),
     checkpoint.CheckpointError, E("checkpoint.load"), "like")
case("checkpoint.load-like-raw-key-for-typed-key",
     lambda tmp: checkpoint.load(_saved(tmp), like={**CKPT_TREE, "key": jnp.ones(2, jnp.uint32)}),
     checkpoint.CheckpointError, E("checkpoint.load"), "like")
case("checkpoint.load-empty-file", lambda tmp: checkpoint.load(_written(tmp, b"")),
     checkpoint.CheckpointError, E("checkpoint.load"), "path")
case("checkpoint.load-pickle-file", lambda tmp: checkpoint.load(_written(tmp, b"\x80\x04K\x01.")),
     checkpoint.CheckpointError, E("checkpoint.load"), "path")

# datasets ------------------------------------------------------------------------------------------
for name in ("xor", "blobs", "moons", "spirals"):
    f = getattr(datasets, name)
    case(f"{name}-key-None", lambda f=f: f(None, 10), T, name, "key")
    case(f"{name}-key-int", lambda f=f: f(0, 10), T, name, "key")
    case(f"{name}-two-keys", lambda f=f: f(jax.random.split(KEY, 2), 10), T, name, "key")
    case(f"{name}-n-0", lambda f=f: f(KEY, 0), V, name, "n")
    case(f"{name}-n-float", lambda f=f: f(KEY, 2.5), V, name, "n")
    case(f"{name}-n-str", lambda f=f: f(KEY, "10"), V, name, "n")
    case(f"{name}-noise-negative", lambda f=f: f(KEY, 10, noise=-1.0), V, name, "noise")
    case(f"{name}-noise-nan", lambda f=f: f(KEY, 10, noise=float("nan")), V, name, "noise")
    case(f"{name}-noise-inf", lambda f=f: f(KEY, 10, noise=float("inf")), V, name, "noise")
    case(f"{name}-noise-vector", lambda f=f: f(KEY, 10, noise=jnp.ones(3)), V, name, "noise")
    case(f"{name}-noise-str", lambda f=f: f(KEY, 10, noise="a"), T, name, "noise")
    case(f"{name}-int-dtype", lambda f=f: f(KEY, 10, dtype=jnp.int32), T, name, "dtype")
    case(f"{name}-dtype-str", lambda f=f: f(KEY, 10, dtype="foo"), T, name, "dtype")
case("blobs-centers-0", lambda: datasets.blobs(KEY, 10, 0), V, "blobs", "centers")
case("blobs-centers-3d-points", lambda: datasets.blobs(KEY, 10, jnp.ones((3, 3))), V, "blobs", "centers")
case("blobs-centers-int-array", lambda: datasets.blobs(KEY, 10, jnp.ones((3, 2), int)), T, "blobs", "centers")
case("blobs-centers-str", lambda: datasets.blobs(KEY, 10, "abc"), T, "blobs", "centers")
case("blobs-radius-nan", lambda: datasets.blobs(KEY, 10, radius=float("nan")), V, "blobs", "radius")
case("blobs-radius-inf", lambda: datasets.blobs(KEY, 10, radius=float("inf")), V, "blobs", "radius")
case("spirals-classes-1", lambda: datasets.spirals(KEY, 10, classes=1), V, "spirals", "classes")
case("spirals-turns-negative", lambda: datasets.spirals(KEY, 10, turns=-1.0), V, "spirals", "turns")
case("train_test_split-key-None", lambda: datasets.train_test_split(None, bx(), by()), T,
     "train_test_split", "key")
case("train_test_split-y-length", lambda: datasets.train_test_split(KEY, bx(), by()[:5]), V,
     "train_test_split", "y")
case("train_test_split-x-0d", lambda: datasets.train_test_split(KEY, 1.0, by()), V, "train_test_split", "x")
case("train_test_split-x-None", lambda: datasets.train_test_split(KEY, None, by()),
     T, "train_test_split", "x")
case("train_test_split-fraction-1", lambda: datasets.train_test_split(KEY, bx(), by(), test_fraction=1.0), V,
     "train_test_split", "test_fraction")
case("train_test_split-fraction-str",
     lambda: datasets.train_test_split(KEY, bx(), by(), test_fraction="a"), T,
     "train_test_split", "test_fraction")
case("train_test_split-stratify-float-y",
     lambda: datasets.train_test_split(KEY, bx(), by().astype(float), stratify=True),
     T, "train_test_split", "y")
case("train_test_split-stratify-str", lambda: datasets.train_test_split(KEY, bx(), by(), stratify="yes"), T,
     "train_test_split", "stratify")
case("fit_standardizer-int", lambda: datasets.fit_standardizer(jnp.ones((3, 2), int)),
     T, "fit_standardizer", "x")
case("fit_standardizer-empty", lambda: datasets.fit_standardizer(jnp.ones((0, 2))),
     V, "fit_standardizer", "x")
case("fit_standardizer-0d", lambda: datasets.fit_standardizer(1.0), V, "fit_standardizer", "x")
case("standardize-features", lambda: datasets.standardize(jnp.ones((3, 5)), stats()), V, "standardize", "x")
case("standardize-features-jit", lambda: jax.jit(datasets.standardize)(jnp.ones((3, 5)), stats()), V,
     "standardize", "x")
case("standardize-int", lambda: datasets.standardize(jnp.ones((3, 2), int), stats()), T, "standardize", "x")
case("standardize-stats-None", lambda: datasets.standardize(bx(), None), T, "standardize", "stats")
case("standardize-stats-dict", lambda: datasets.standardize(bx(), {"mean": 0.0}), T, "standardize", "stats")
case("batches-batch_size-0", lambda: datasets.batches(KEY, bx(), by(), 0), V, "batches", "batch_size")
case("batches-key-str", lambda: datasets.batches("k", bx(), by(), 4), T, "batches", "key")
case("batches-y-length", lambda: datasets.batches(KEY, bx(), by()[:3], 4), V, "batches", "y")
case("load-name-unknown", lambda: datasets.load("mnist", key=KEY), V, "load", "name")
case("load-key-None", lambda: datasets.load("xor", key=None), T, "load", "key")
case("load-real-with-options", lambda: datasets.load("iris", key=KEY, n=5), T, "load", "options")
case("load-generator-option", lambda: datasets.load("xor", key=KEY, n=0), V, "xor", "n")
case("load-standardize-str", lambda: datasets.load("xor", key=KEY, standardize="x"), T, "load", "standardize")


@pytest.mark.parametrize("call, exc, pattern", CASES)
def test_bad_input_raises_a_named_error(call, exc, pattern, tmp_path):
    with pytest.raises(Exception) as info:
        call(tmp_path) if getattr(call, "uses_tmp", False) else call()
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    assert re.search(pattern, str(info.value), re.S), str(info.value)


def test_every_public_function_has_a_bad_input_row():
    # Each public callable of each module appears in at least one row id (by name), so a
    # function added to an __all__ without checks shows up here.
    ids = " ".join(p.id for p in CASES)
    skip = {  # types and constants, and functions that take no arguments
        "Layer", "Split", "Standardizer", "Dataset", "NAMES", "MlpGrads", "ACTIVATIONS", "LOSSES",
        "PerceptronHistory", "NOT_RUN", "FitResult", "NonFiniteReport", "LeafCheck", "GradientCheck",
        "VanishingGradientReport", "GradientTransformation", "Schedule", "ScalarOrSchedule", "SgdState",
        "MomentumState", "AdagradState", "RmspropState", "AdamState", "CheckpointError", "FORMAT_VERSION",
        "MAGIC", "names", "digits", "breast_cancer", "iris", "default_dir", "ENV_VAR", "MAX_BYTES",
        "StatefulLayer", "Interrupted", "Description", "HiddenLayer", "ActivationStats",
        "description",  # returns None for anything that is not a named layer (documented)
    }
    missing = []
    for module in (A, initializers, layers, models, losses, metrics, optimizers, training, parallel,
                   perceptron, backprop, diagnostics, checkpoint, datasets, compilation_cache):
        prefix = module.__name__.rsplit(".", 1)[-1]
        for name in module.__all__:
            if name in skip:
                continue
            aliases = {name, f"{prefix}.{name}", {"binary_cross_entropy": "bce",
                                                  "softmax_cross_entropy": "sce"}.get(name, name)}
            if not any(re.search(rf"(^|[ -]){re.escape(a)}-", ids) for a in aliases):
                missing.append(f"{prefix}.{name}")
    assert not missing, missing


# --- the general layer form: StatefulLayer, dropout, batch norm, state through training -----------
GENERAL = layers.serial(layers.dense(4), layers.batch_norm(), fnn.relu, layers.dropout(0.5), layers.dense(3))


def general_init():
    return GENERAL.init(KEY, (2,))


case("stateful-not-a-layer", lambda: layers.stateful(3), T, "stateful", "layer")
case("stateful-apply-given-state", lambda: layers.stateful(layers.dense(2)).apply(
    layers.dense(2).init(KEY, (3,)), {"m": jnp.ones(2)}, X43), V, "stateful layer", "state")
case("stateful-apply-train-str", lambda: layers.stateful(layers.dense(2)).apply(
    layers.dense(2).init(KEY, (3,)), (), X43, train="yes"), T, "stateful layer", "train")
case("dropout-rate-1", lambda: layers.dropout(1.0), V, "dropout", "rate")
case("dropout-rate-negative", lambda: layers.dropout(-0.1), V, "dropout", "rate")
case("dropout-rate-str", lambda: layers.dropout("0.5"), T, "dropout", "rate")
case("dropout-train-without-key", lambda: layers.dropout(0.5).apply((), (), X43, train=True), V,
     "dropout", "key")
case("dropout-train-int", lambda: layers.dropout(0.5).apply((), (), X43, train=1), T, "dropout", "train")
case("batch_norm-momentum-2", lambda: layers.batch_norm(momentum=2.0), V, "batch_norm", "momentum")
case("batch_norm-eps-0", lambda: layers.batch_norm(eps=0.0), V, "batch_norm", "eps")
case("batch_norm-state-of-other-size", lambda: layers.batch_norm().apply(
    *layers.batch_norm().init(KEY, (3,))[:1], {"mean": jnp.zeros(5), "var": jnp.ones(5)}, X43), V,
    "batch_norm", "state")
case("batch_norm-x-wrong-features", lambda: layers.batch_norm().apply(
    *layers.batch_norm().init(KEY, (5,)), X43), V, "batch_norm", "x")
case("serial-general-state-short", lambda: GENERAL.apply(general_init()[0], [()], XT), V, "serial", "state")
case("serial-general-train-str", lambda: GENERAL.apply(*general_init(), XT, train="no"), T, "serial", "train")
case("fit-general-without-state", lambda: training.fit(GENERAL, general_init()[0], optimizers.sgd(0.1),
     XT, YT, key=KEY, progress=False), V, "fit", "state")
case("fit-general-without-key", lambda: training.fit(GENERAL, *general_init()[:1], optimizers.sgd(0.1),
     XT, YT, state=general_init()[1], shuffle=False, progress=False), V, "fit", "key")
case("fit-pure-given-state", lambda: _fit(state=[{"mean": jnp.zeros(4)}]), V, "fit", "state")
case("fit-general-state-of-other-model", lambda: training.fit(GENERAL, general_init()[0], optimizers.sgd(0.1),
     XT, YT, key=KEY, state=layers.serial(layers.dense(4), layers.batch_norm(), layers.dense(3)).init(
         KEY, (2,))[1], progress=False), V, "fit", "state", pattern=r"^fit: (x|state) does not fit the model: ")
case("evaluate-general-without-state", lambda: training.evaluate(GENERAL, general_init()[0], XT, YT), V,
     "evaluate", "state")
case("train_step-general-without-state", lambda: training.train_step(
    general_init()[0], optimizers.sgd(0.1).init(general_init()[0]), XT, YT, model=GENERAL,
    optimizer=optimizers.sgd(0.1)), V, "train_step", "state")
case("train_step-pure-given-state", lambda: _step(state={"mean": jnp.zeros(3)}), V, "train_step", "state")
case("step_key-not-a-key", lambda: training.step_key("k", 3), T, "step_key", "key")
case("fit-donate-str", lambda: _fit(donate="no"), T, "fit", "donate")
case("fit-progress-str", lambda: _fit(progress="no"), T, "fit", "progress")
case("fit-y-nan", lambda: _fit(loss=fnn.losses.binary_cross_entropy, y=jnp.full((10, 3), jnp.nan)),
     V, "fit", "y")
case("fit_ensemble-unknown-keyword", lambda: training.fit_ensemble(
    MLP, training.init_ensemble(MLP, jax.random.split(KEY, 2), (2,)), optimizers.sgd(0.1), XT, YT,
    key=KEY, epoch=3), T, "fit_ensemble", "epoch")

# --- layers for real networks, metrics, interop, diagnostics of activations -----------------------
case("conv-features-0", lambda: layers.conv(0, (3, 3)), V, "conv", "features")
case("conv-kernel-str", lambda: layers.conv(2, "3"), V, "conv", "kernel_size")
case("max_pool-window-0", lambda: layers.max_pool((0, 2)), V, "max_pool", "window")
case("avg_pool-padding-full", lambda: layers.avg_pool((2, 2), padding="FULL"), V, "avg_pool", "padding")
case("flatten-init-shape-int", lambda: layers.flatten().init(KEY, 3), T, "flatten", "input_shape")
case("reshape-shape-str", lambda: layers.reshape((5, "a")), T, "reshape", "input_shape")
case("layer_norm-eps-0", lambda: layers.layer_norm(eps=0.0), V, "layer_norm", "eps")
case("embedding-num-0", lambda: layers.embedding(0, 4), V, "embedding", "num_embeddings")
case("residual-not-a-layer", lambda: layers.residual(3), T, "residual", E("layers[0]"))
case("parallel-empty", lambda: layers.parallel(), V, "parallel", "layers")
case("fan_out-0", lambda: layers.fan_out(0), V, "fan_out", "n")
case("fan_in_sum-apply-one-array", lambda: layers.fan_in_sum().apply((), X43), T, "fan_in_sum", "x")
case("fan_in_concat-axis-str", lambda: layers.fan_in_concat("a"), V, "fan_in_concat", "axis")
case("mixed_precision-int-dtype", lambda: layers.mixed_precision(layers.dense(2), compute_dtype=jnp.int32), T,
     "mixed_precision", "compute_dtype")
case("named-route-bad", lambda: layers.named(layers.dense(2), "d", route="sideways"), V, "named", "route")
case("cnn-channels-0", lambda: models.cnn(channels=(0,)), V, "cnn", "channels")
case("confusion_matrix-labels-float", lambda: metrics.confusion_matrix(jnp.ones((4, 3)), jnp.ones(4)), T,
     "confusion_matrix", "labels")
case("f1-average-weighted", lambda: metrics.f1(jnp.ones((4, 3)), jnp.zeros(4, int), average="weighted"), V,
     "f1", "average")
case("precision-zero_division-2", lambda: metrics.precision(jnp.ones((4, 3)), jnp.zeros(4, int), zero_division=2),
     V, "precision", "zero_division")
case("recall-labels-2d", lambda: metrics.recall(jnp.ones((4, 3)), jnp.zeros((4, 2), int)), V, "recall", "labels")
case("top_k_accuracy-k-0", lambda: metrics.top_k_accuracy(jnp.ones((4, 3)), jnp.zeros(4, int), 0), V,
     "top_k_accuracy", "k")
case("hidden_layers-model-int", lambda: diagnostics.hidden_layers(3, [], XT), T, "hidden_layers", "model")
case("dead_units-x-1d", lambda: diagnostics.dead_units(MLP, mlp_params(), jnp.ones(2)), V, "dead_units", "x")
case("activation_stats-activation-unknown", lambda: diagnostics.activation_stats(
    MLP, mlp_params(), XT, activation="nope"), V, "activation_stats", "activation")
case("export_safetensors-path-int", lambda: checkpoint.export_safetensors(3, {"w": XT}), T,
     E("checkpoint.export_safetensors"), "path")
case("import_safetensors-path-int", lambda: checkpoint.import_safetensors(3, {"w": XT}), T,
     E("checkpoint.import_safetensors"), "path")
case("circles-n-0", lambda: datasets.circles(KEY, 0), V, "circles", "n")

# --- values that only exist at run time -----------------------------------------------------------

def test_softmax_cross_entropy_out_of_range_labels_under_jit_give_nan():
    # Under jit the labels are abstract: the documented fallback is a NaN loss, never a
    # silently wrong finite number. fit checks concrete labels before compiling.
    value = jax.jit(losses.softmax_cross_entropy)(X43, jnp.array([0, 1, 3, 0]))
    assert np.isnan(value)


def test_binary_cross_entropy_out_of_range_labels_under_jit_give_nan():
    value = jax.jit(losses.binary_cross_entropy)(jnp.ones(4), jnp.array([0, 1, 2, 0]))
    assert np.isnan(value)


# --- checks cost nothing inside compiled code -------------------------------------------------------

def _primitive_counts(closed_jaxpr) -> collections.Counter:
    counts = collections.Counter()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            counts[eqn.primitive.name] += 1
            for sub in jex.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(closed_jaxpr.jaxpr)
    return counts


_HOST_PRIMITIVES = ("callback", "debug", "print", "infeed", "outfeed", "host", "io_")


def test_validated_mlp_loss_traces_to_the_same_ops_as_an_unchecked_reference():
    # The mlp, its dense layers and mse check shapes and dtypes in Python; the program
    # they trace must be exactly the unchecked arithmetic, primitive for primitive.
    x, t = jnp.ones((5, 2)), jnp.ones((5, 3))

    def checked(params, x, t):
        return losses.mse(MLP.apply(params, x), t)

    def reference(params, x, t):
        a = A.relu(x @ params[0]["w"] + params[0]["b"])
        z = a @ params[1]["w"] + params[1]["b"]
        return jnp.mean(jnp.square(z - t))

    got = _primitive_counts(jax.make_jaxpr(checked)(mlp_params(), x, t))
    want = _primitive_counts(jax.make_jaxpr(reference)(mlp_params(), x, t))
    assert got == want
    grad_got = _primitive_counts(jax.make_jaxpr(jax.grad(checked))(mlp_params(), x, t))
    grad_want = _primitive_counts(jax.make_jaxpr(jax.grad(reference))(mlp_params(), x, t))
    assert grad_got == grad_want


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_validated_train_step_has_no_host_callbacks(name):
    # A whole checked train step (mlp, softmax cross-entropy, optimizer update with its
    # structure/shape/dtype checks, apply_updates) compiles to device ops only.
    opt = OPTIMIZERS[name](0.1)
    step = training.make_train_step(MLP, opt, donate=False, jit=False)
    jaxpr = jax.make_jaxpr(step)(mlp_params(), opt.init(mlp_params()), XT, YT)
    host = [p for p in _primitive_counts(jaxpr) if any(h in p for h in _HOST_PRIMITIVES)]
    assert not host


def test_compiled_train_step_runs_without_host_transfers():
    # Once compiled, a checked step moves nothing between host and device: the checks
    # ran at trace time and left no synchronisation behind.
    opt = optimizers.adam(1e-2)
    step = training.make_train_step(MLP, opt, donate=False)
    state = opt.init(mlp_params())
    params, state, _ = step(mlp_params(), state, XT, YT)          # compile outside the guard
    with jax.transfer_guard("disallow"):
        params, state, loss = step(params, state, XT, YT)
        params, state, loss = step(params, state, XT, YT)
    assert np.isfinite(float(loss))


def test_mlp_apply_rejects_params_of_other_sizes():
    """A model whose declared sizes differ from the params is refused (issue 19, item 2)."""
    params = models.mlp([16, 3]).init(KEY, (2,))
    with pytest.raises(ValueError, match=r"^mlp: params must hold layer 0's kernel w of shape \(in, 64\)"):
        models.mlp([64, 5]).apply(params, XT)
    with pytest.raises(ValueError, match=r"^fit: x does not fit the model: mlp: params must"):
        training.fit(models.mlp([64, 5]), params, optimizers.sgd(0.1), XT, YT % 3, key=KEY, progress=False)


def test_mlp_dropout_and_batch_norm_arguments_are_checked():
    with pytest.raises(ValueError, match=r"^mlp: dropout must be in \[0, 1\)"):
        models.mlp([4, 3], dropout=1.0)
    with pytest.raises(TypeError, match=r"^mlp: batch_norm must be a bool"):
        models.mlp([4, 3], batch_norm="yes")
    assert isinstance(models.mlp([4, 3], dropout=0.1), layers.StatefulLayer)
    assert models.mlp([4, 3], dropout=0.0) is models.mlp([4, 3])     # the pure model, as before


def test_factory_validation_does_not_depend_on_the_cache():
    """Issue 19, item 12: an equal-hashing valid call built first must not let an invalid one through."""
    models.mlp([16, 3])
    with pytest.raises(ValueError, match=r"^mlp: features\[0\] must be a positive integer"):
        models.mlp([16.0, 3])
    optimizers.momentum(0.1, nesterov=True)
    with pytest.raises(TypeError, match=r"^momentum: nesterov must be a bool"):
        optimizers.momentum(0.1, nesterov=1)
    assert models.mlp([16, 3]) is models.mlp((16, 3))       # equal models are still one object


@pytest.mark.parametrize("bad_loss, exc", [(lambda p, t: jnp.mean(p, axis=-1), ValueError),
                                           (lambda p, t: jnp.int32(3), ValueError)])
def test_fit_loss_must_return_a_floating_scalar(bad_loss, exc):
    with pytest.raises(exc, match=r"^fit: loss must return a floating scalar"):
        _fit(loss=bad_loss, metrics={})


def test_fit_metric_must_return_a_scalar():
    with pytest.raises(ValueError, match=r"^fit: metrics\['per_class'\] must return a floating scalar"):
        _fit(eval_data=(XT, YT), metrics={"per_class": lambda p, t: jnp.mean(p, axis=0)})


def test_fit_x_of_extra_axis_names_the_predictions_shape():
    """Issue 19, item 11: x of shape (n, 1, 2) gives predictions (1, 3) per example; the
    loss's complaint about the labels now says what it was given."""
    with pytest.raises(ValueError, match=r"in fit: loss of the model's predictions, per example \(1, 3\), "
                                         r"and y, per example \(\)"):
        _fit(x=jnp.ones((10, 1, 2)))
