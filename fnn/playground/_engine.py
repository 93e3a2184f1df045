"""The playground's training: one compiled program per page update (private).

An update runs ``epochs_per_update`` epochs exactly as :func:`fnn.fit` does (the epoch
order of :func:`fnn.training.epoch_order`, a ``lax.scan`` of
:func:`fnn.training.train_step` over the full batches, one more step on the ragged
last batch, the test loss after every epoch), then evaluates every view on the grid:
the output heat map, one map per hidden neuron and the per-layer gradient norms. The
number of epochs (0 for the first picture), the learning rate, weight decay, dropout
rate and data are traced arguments, so changing them does not recompile; the layer
sizes, batch size, activation, optimizer and whether there is dropout at all
(:class:`_Shape`) do.

With dropout the network trains as ``fnn.mlp(..., dropout=rate)`` does inside
:func:`fnn.fit` (every hidden unit dropped with probability ``rate`` after its
activation, the mask drawn with the step's :func:`fnn.training.step_key`), while the
test loss, heat maps and gradient norms use the inference mode (``train=False``: the
whole network, which is the plain MLP's forward stage on the same params).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fnn
from fnn.playground._config import LIMITS, Config

__all__ = ["Run", "start", "advance", "DOMAIN", "GRID", "NEURON_GRID"]

DOMAIN = 3.0          # the heat maps cover [-DOMAIN, DOMAIN]^2 of the standardised inputs
GRID = 64             # output heat map, GRID x GRID
NEURON_GRID = 32      # one map per hidden neuron (every other grid point)
_OPTIMIZERS = {"sgd": fnn.optimizers.sgd, "momentum": fnn.optimizers.momentum,
               "adagrad": fnn.optimizers.adagrad, "rmsprop": fnn.optimizers.rmsprop,
               "adam": fnn.optimizers.adam}


class Run(NamedTuple):
    """Where one page's training stands: its config, data, params and history."""

    config: Config
    data: Any                  # fnn.datasets.Dataset
    params: Any
    opt_state: Any
    key: jax.Array
    epoch: int
    train_loss: list
    test_loss: list
    converged: bool = False    # the perceptron stops at an error-free epoch


def keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The data, init and order keys of a run (the same split "show the code" writes)."""
    return tuple(jax.random.split(jax.random.key(seed), 3))


def load_data(config: Config) -> Any:
    options: dict[str, Any] = {"n": config.points, "noise": config.noise}
    if config.data == "blobs":
        options["centers"] = 2
    k_data, _, _ = keys(config.seed)
    return fnn.datasets.load(config.data, key=k_data, test_fraction=config.test_fraction, **options)


def optimizer(name: str, learning_rate: Any, weight_decay: Any) -> Any:
    """``fnn.optimizers.<name>(learning_rate)`` after an L2 weight decay term."""
    return optax.chain(optax.add_decayed_weights(weight_decay), _OPTIMIZERS[name](learning_rate))


def model_of(config: Config) -> Any:
    """The page's network in inference mode (with dropout, ``train=False`` is this model)."""
    return fnn.mlp(list(config.hidden) + [2], config.activation)


def start(config: Config) -> Run:
    """A fresh run of ``config`` at epoch 0."""
    data = load_data(config)
    _, k_init, k_order = keys(config.seed)
    if config.model == "perceptron":
        params, opt_state = fnn.perceptron.init(2), None
    else:
        params = model_of(config).init(k_init, (2,))
        opt_state = optimizer(config.optimizer, config.learning_rate, config.weight_decay).init(params)
    return Run(config, data, params, opt_state, k_order, 0, [], [])


def _grid(size: int) -> jax.Array:
    t = jnp.linspace(-DOMAIN, DOMAIN, size)
    xx, yy = jnp.meshgrid(t, -t)          # row 0 is the top of the picture (largest x2)
    return jnp.stack([xx.ravel(), yy.ravel()], axis=-1)


def _forward(activation: str, params: list, x: jax.Array, keep: Any = None,
             key: Any = None) -> tuple[jax.Array, list]:
    """The MLP's logits and hidden activations; with ``keep`` (traced, ``1 - rate``) and
    ``key``, inverted dropout after each activation, drawn as :func:`fnn.mlp` draws it
    (one key per hidden layer from ``jax.random.split``)."""
    act = fnn.activations.get(activation)
    keys = None if key is None else jax.random.split(key, max(len(params) - 1, 1))
    a, hidden = x, []
    for i, p in enumerate(params[:-1]):
        z = a @ p["w"] + p["b"]
        a = act(z, p["alpha"]) if activation == "prelu" else act(z)
        if keys is not None:
            kept = jax.random.bernoulli(keys[i], keep, a.shape)
            a = jnp.where(kept, a / keep.astype(a.dtype), jnp.zeros((), a.dtype))
        hidden.append(a)
    return a @ params[-1]["w"] + params[-1]["b"], hidden


def _dropout_model(activation: str, keep: jax.Array) -> fnn.layers.StatefulLayer:
    """``fnn.mlp(..., dropout=1 - keep)``'s apply with the rate a traced value, so that a
    new rate needs no new program (its equality with fit is a test). Only ``apply``: the
    params are the plain MLP's, the state is empty."""
    def apply(params, state, x, *, key=None, train=False):
        return _forward(activation, params, x, keep, key if train else None)[0], state
    # Only apply is ever called, so init is None, outside StatefulLayer's type on purpose.
    return fnn.layers.StatefulLayer(None, apply)  # type: ignore[arg-type]


def _hidden_maps(activation: str, params: list, x: jax.Array) -> jax.Array:
    """Every hidden unit's activation at ``x``, scaled to [-1, 1] per unit: ``(units, points)``."""
    _, hidden = _forward(activation, params, x)
    if not hidden:
        return jnp.zeros((0, x.shape[0]))
    units = jnp.concatenate([a.T for a in hidden])
    return units / jnp.maximum(jnp.max(jnp.abs(units), axis=1, keepdims=True), 1e-6)


class _Shape(NamedTuple):
    """What the compiled update depends on; everything else is a traced argument."""

    hidden: tuple
    activation: str
    optimizer: str
    batch_size: int
    dropout: bool          # trained as the general model (the rate itself is traced)


def _shape(config: Config) -> _Shape:
    return _Shape(config.hidden, config.activation, config.optimizer, config.batch_size,
                  config.dropout > 0)


@functools.partial(jax.jit, static_argnames=("shape",))
def _network_update(shape: _Shape, params, opt_state, key, epoch, epochs, learning_rate, weight_decay,
                    keep, x, y, x_test, y_test):
    """``epochs`` (traced, up to the largest ``epochs_per_update``) epochs, then the views."""
    # Inference mode; without dropout or batch norm, mlp gives a pure Layer.
    model = cast(fnn.layers.Layer, fnn.mlp(list(shape.hidden) + [2], shape.activation))
    opt = optimizer(shape.optimizer, learning_rate, weight_decay)
    loss = fnn.losses.softmax_cross_entropy
    n = x.shape[0]
    batch = min(shape.batch_size, n)
    full, rest = divmod(n, batch)
    steps = full + (1 if rest else 0)

    def train(carry, xb, yb, t):
        """One step; ``t`` is the global step index (the key of fit's step ``t``)."""
        p, s = carry
        if shape.dropout:
            p, s, _, value = fnn.training.train_step(
                p, s, xb, yb, model=_dropout_model(shape.activation, keep), optimizer=opt, loss=loss,
                state=[()] * len(shape.hidden), key=fnn.training.step_key(key, t))
        else:
            p, s, value = fnn.training.train_step(p, s, xb, yb, model=model, optimizer=opt, loss=loss)
        return (p, s), value

    def one_epoch(i, c):
        carry, train_loss, test_loss = c
        perm = fnn.training.epoch_order(key, epoch + i, n)
        xs, ys = x[perm], y[perm]
        first = (epoch + i) * steps
        carry, losses = jax.lax.scan(
            lambda c, j: train(c, jax.lax.dynamic_slice_in_dim(xs, j * batch, batch),
                               jax.lax.dynamic_slice_in_dim(ys, j * batch, batch), first + j),
            carry, jnp.arange(full))
        total = jnp.sum(losses) * batch
        if rest:
            carry, last = train(carry, xs[full * batch:], ys[full * batch:], first + full)
            total = total + last * rest
        return (carry, train_loss.at[i].set(total / n),
                test_loss.at[i].set(loss(model.apply(carry[0], x_test), y_test)))

    buffer = jnp.full((LIMITS["epochs_per_update"][1],), jnp.nan)
    (params, opt_state), train_loss, test_loss = jax.lax.fori_loop(
        0, epochs, one_epoch, ((params, opt_state), buffer, buffer))
    grads = jax.grad(lambda p: loss(model.apply(p, x), y))(params)
    views = {"output": jax.nn.softmax(model.apply(params, _grid(GRID)))[:, 1],
             "neurons": _hidden_maps(shape.activation, params, _grid(NEURON_GRID)),
             "grad_norms": fnn.diagnostics.layer_grad_norms(grads)}
    return params, opt_state, train_loss, test_loss, views


@jax.jit
def _perceptron_views(params):
    return {"output": fnn.perceptron.predict(params, _grid(GRID)), "neurons": jnp.zeros((0, 1)),
            "grad_norms": jnp.zeros((0,))}


def _perceptron_update(run: Run) -> tuple[Run, dict]:
    d, config = run.data, run.config
    params, history, converged = run.params, None, run.converged
    train_errors, test_errors = [], []
    if not converged:
        params, history = fnn.perceptron.fit(params, d.x_train, d.y_train,
                                             learning_rate=config.learning_rate,
                                             max_epochs=config.epochs_per_update)
        done = int(history.epochs)
        converged = bool(history.converged)
        train_errors = (np.asarray(history.errors[:done]) / d.x_train.shape[0]).tolist()
        wrong = np.asarray(fnn.perceptron.predict(params, d.x_test)) != np.asarray(d.y_test)
        test_errors = [float(wrong.mean())] * done
    run = run._replace(params=params, epoch=run.epoch + len(train_errors), converged=converged,
                       train_loss=run.train_loss + train_errors, test_loss=run.test_loss + test_errors)
    return run, _perceptron_views(params)


def advance(run: Run, train: bool = True) -> tuple[Run, dict]:
    """``run`` after one update (or as it is, ``train=False``) and its views as host arrays."""
    if run.config.model == "perceptron":
        if train:
            run, views = _perceptron_update(run)
        else:
            views = _perceptron_views(run.params)
        return run, jax.device_get(views)
    config, d = run.config, run.data
    epochs = config.epochs_per_update if train else 0   # 0: the views of the current params
    params, opt_state, train_loss, test_loss, views = _network_update(
        _shape(config), run.params, run.opt_state, run.key, jnp.int32(run.epoch), jnp.int32(epochs),
        jnp.float32(config.learning_rate), jnp.float32(config.weight_decay),
        jnp.float32(1.0 - config.dropout),     # rounded as fnn.mlp rounds its 1 - rate
        d.x_train, d.y_train, d.x_test, d.y_test)
    train_loss, test_loss, views = jax.device_get((train_loss, test_loss, views))
    run = run._replace(params=params, opt_state=opt_state, epoch=run.epoch + epochs,
                       train_loss=run.train_loss + train_loss[:epochs].tolist(),
                       test_loss=run.test_loss + test_loss[:epochs].tolist())
    return run, views
