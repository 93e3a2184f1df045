"""Peers for the regularised MLP: dense, batch norm, ReLU, dropout 0.2 per hidden layer.

Each variant trains ``epochs`` passes over ``steps`` batches with Adam and softmax
cross-entropy, in training mode (batch statistics, running averages updated, a fresh
dropout mask every step), written the way its library's docs recommend.
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import jax
import jax.numpy as jnp
import optax

import fnn
from _peers import LR, Problem, python_loop, xent

RATE = 0.2
MOMENTUM = 0.99
EPS = 1e-5


def fnn_fit(problem: Problem) -> Callable:
    """fnn: ``fnn.mlp(..., dropout=0.2, batch_norm=True)``, one fit call per unit."""
    model = fnn.mlp(list(problem.sizes[1:]), dropout=RATE, batch_norm=True)
    optimizer = fnn.optimizers.adam(LR)
    x, y = problem.data()
    params, state = model.init(jax.random.key(1), (problem.sizes[0],))
    held = [(params, optimizer.init(params), state)]

    def run():
        params, opt_state, state = held[0]
        r = fnn.fit(model, params, optimizer, x, y, opt_state=opt_state, state=state,
                    epochs=problem.epochs, batch_size=problem.batch_size, key=jax.random.key(0),
                    progress=False, donate=True)
        held[0] = (r.params, r.opt_state, r.state)
        return r.params, r.history["train_loss"]

    return run


def hand_scan(problem: Problem) -> Callable:
    """Hand-written JAX: a jitted epoch (permutation + lax.scan), the same computation."""
    sizes = problem.sizes
    opt = optax.adam(LR)
    x, y = problem.data()
    bs, steps = problem.batch_size, problem.steps

    def init(key):
        params, stats = [], []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            key, sub = jax.random.split(key)
            layer = {"w": jax.nn.initializers.he_normal()(sub, (a, b)), "b": jnp.zeros(b)}
            if i < len(sizes) - 2:
                layer.update(scale=jnp.ones(b), offset=jnp.zeros(b))
                stats.append({"mean": jnp.zeros(b), "var": jnp.ones(b)})
            params.append(layer)
        return params, stats

    def apply(params, stats, x, key):
        new = []
        keys = jax.random.split(key, len(params) - 1)
        for p, s, k in zip(params[:-1], stats, keys):
            z = x @ p["w"] + p["b"]
            mean = z.mean(0)
            var = jnp.square(z - mean).mean(0)
            new.append({"mean": MOMENTUM * s["mean"] + (1 - MOMENTUM) * mean,
                        "var": MOMENTUM * s["var"] + (1 - MOMENTUM) * var})
            a = jax.nn.relu((z - mean) * jax.lax.rsqrt(var + EPS) * p["scale"] + p["offset"])
            keep = jax.random.bernoulli(k, 1 - RATE, a.shape)
            x = jnp.where(keep, a / (1 - RATE), 0)
        return x @ params[-1]["w"] + params[-1]["b"], new

    @jax.jit
    def epoch(params, opt_state, stats, key, x, y):
        order, dropout = jax.random.split(key)
        idx = jax.random.permutation(order, problem.n).reshape(steps, bs)

        def body(carry, i):
            params, opt_state, stats = carry
            k = jax.random.fold_in(dropout, i[0])
            (loss, stats), grads = jax.value_and_grad(
                lambda p: (lambda out: (xent(out[0], y[i]), out[1]))(apply(p, stats, x[i], k)),
                has_aux=True)(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, stats), loss

        (params, opt_state, stats), losses = jax.lax.scan(body, (params, opt_state, stats), idx)
        return params, opt_state, stats, losses.mean()

    params, stats = init(jax.random.key(1))
    held = [(params, opt.init(params), stats)]

    def run():
        params, opt_state, stats = held[0]
        for e in range(problem.epochs):
            params, opt_state, stats, loss = epoch(params, opt_state, stats, jax.random.key(e), x, y)
        held[0] = (params, opt_state, stats)
        return params, loss

    return run


def flax_linen_loop(problem: Problem) -> Callable | None:
    """flax.linen: ``nn.BatchNorm`` with mutable ``batch_stats``, ``nn.Dropout`` with an rng."""
    if importlib.util.find_spec("flax") is None:
        return None
    import flax.linen as nn

    class MLP(nn.Module):
        features: tuple

        @nn.compact
        def __call__(self, x, train: bool):
            for f in self.features[:-1]:
                x = nn.Dense(f)(x)
                x = nn.BatchNorm(use_running_average=not train, momentum=MOMENTUM, epsilon=EPS)(x)
                x = nn.Dropout(RATE, deterministic=not train)(nn.relu(x))
            return nn.Dense(self.features[-1])(x)

    model = MLP(tuple(problem.sizes[1:]))
    opt = optax.adam(LR)

    @jax.jit
    def step(params, batch_stats, opt_state, key, x, y):
        key, sub = jax.random.split(key)

        def loss_fn(p):
            logits, updates = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                          rngs={"dropout": sub}, mutable=["batch_stats"])
            return xent(logits, y), updates["batch_stats"]

        (_, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, key

    def state():
        variables = model.init(jax.random.key(1), jnp.zeros((1, problem.sizes[0])), train=False)
        params = variables["params"]
        return params, variables["batch_stats"], opt.init(params), jax.random.key(2)

    def four(params, batch_stats, opt_state, key, x, y):
        return step(params, batch_stats, opt_state, key, x, y)

    return python_loop(problem, four, state)


def equinox_loop(problem: Problem) -> Callable | None:
    """equinox: ``eqx.nn.BatchNorm`` with ``eqx.nn.State``, ``eqx.nn.Dropout`` with a key."""
    if importlib.util.find_spec("equinox") is None:
        return None
    import equinox as eqx

    sizes = problem.sizes

    class MLP(eqx.Module):
        linears: list
        norms: list
        dropout: eqx.nn.Dropout

        def __init__(self, key):
            keys = jax.random.split(key, len(sizes) - 1)
            self.linears = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)]
            self.norms = [eqx.nn.BatchNorm(b, axis_name="batch", momentum=MOMENTUM, eps=EPS, mode="batch")
                          for b in sizes[1:-1]]
            self.dropout = eqx.nn.Dropout(RATE)

        def __call__(self, x, state, key):
            keys = jax.random.split(key, len(self.norms))
            for linear, norm, k in zip(self.linears[:-1], self.norms, keys):
                x, state = norm(linear(x), state)
                x = self.dropout(jax.nn.relu(x), key=k)
            return self.linears[-1](x), state

    opt = optax.adam(LR)

    @eqx.filter_jit
    def step(model, state, opt_state, key, x, y):
        key, sub = jax.random.split(key)

        def loss_fn(m):
            keys = jax.random.split(sub, x.shape[0])
            logits, new_state = jax.vmap(m, axis_name="batch", in_axes=(0, None, 0),
                                         out_axes=(0, None))(x, state, keys)
            return xent(logits, y), new_state

        (_, state), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, opt_state, key

    def state():
        model, st = eqx.nn.make_with_state(MLP)(jax.random.key(1))
        return model, st, opt.init(eqx.filter(model, eqx.is_array)), jax.random.key(2)

    return python_loop(problem, step, state)


PEERS = {"flax.linen": flax_linen_loop, "equinox": equinox_loop}
