"""The same MLP training written the way each library's own docs recommend.

Every builder takes a :class:`Problem` and returns ``run() -> arrays``: one timed unit,
``problem.epochs`` passes over ``problem.steps`` batches with Adam (``optax.adam``), the
ReLU MLP ``problem.sizes`` and softmax cross-entropy. Params and optimizer state are
built once; each run() continues training from where the last one stopped, so no
variant pays for initialisation (or, for flax.nnx, a retrace per new model) in the timing. Python-loop variants step through a
list of device batches prepared once (the most favourable input pipeline: what is timed
is the step and its dispatch). A builder returns None when its library is missing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Callable

import jax
import jax.numpy as jnp
import optax

import fnn

LR = 1e-3


@dataclasses.dataclass(frozen=True)
class Problem:
    sizes: tuple            # (in, hidden..., out)
    batch_size: int
    steps: int              # batches per epoch
    epochs: int = 1

    @property
    def n(self) -> int:
        return self.batch_size * self.steps

    def data(self):
        kx, ky = jax.random.split(jax.random.key(0))
        x = jax.random.normal(kx, (self.n, self.sizes[0]), jnp.float32)
        y = jax.random.randint(ky, (self.n,), 0, self.sizes[-1])
        return x, y

    def batches(self):
        x, y = self.data()
        return [(x[i * self.batch_size:(i + 1) * self.batch_size],
                 y[i * self.batch_size:(i + 1) * self.batch_size]) for i in range(self.steps)]

    def flops_per_step(self) -> float:
        """Matmul FLOPs of one forward + backward stage (2 per multiply-add)."""
        total = 0.0
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            mults = 3 if i else 2          # forward, weight grad, input grad (not for layer 0)
            total += mults * 2.0 * self.batch_size * a * b
        return total


def xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def raw_mlp(problem: Problem):
    def init(key):
        params = []
        for a, b in zip(problem.sizes[:-1], problem.sizes[1:]):
            key, sub = jax.random.split(key)
            params.append({"w": jax.nn.initializers.he_normal()(sub, (a, b)), "b": jnp.zeros(b)})
        return params

    def apply(params, x):
        for p in params[:-1]:
            x = jax.nn.relu(x @ p["w"] + p["b"])
        return x @ params[-1]["w"] + params[-1]["b"]

    return init, apply


def python_loop(problem: Problem, step: Callable, state: Callable) -> Callable:
    """``for epoch: for batch: state = step(*state, x, y)``; each run() trains on."""
    batches = problem.batches()
    held = [state()]            # built once: no variant pays for init inside the timing

    def run():
        s = held[0]
        for _ in range(problem.epochs):
            for x, y in batches:
                s = step(*s, x, y)
        held[0] = s
        return jax.tree.leaves(s)

    return run


def hand_scan(problem: Problem) -> Callable:
    """Hand-written JAX: one jitted epoch = permutation + lax.scan over batches."""
    return scanned_epochs(problem, *raw_mlp(problem))


def scanned_epochs(problem, init: Callable, apply: Callable) -> Callable:
    """The hand-written reference for any ``apply(params, x)``: a jitted epoch (permutation +
    ``lax.scan`` over batches, optax Adam), called once per epoch; each run() trains on."""
    opt = optax.adam(LR)
    x, y = problem.data()
    bs, steps = problem.batch_size, problem.steps

    @jax.jit
    def epoch(params, opt_state, key, x, y):
        idx = jax.random.permutation(key, problem.n).reshape(steps, bs)

        def body(carry, i):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(lambda p: xent(apply(p, x[i]), y[i]))(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), idx)
        return params, opt_state, losses.mean()

    params = init(jax.random.key(1))
    held = [(params, opt.init(params))]

    def run():
        params, opt_state = held[0]
        for e in range(problem.epochs):
            params, opt_state, loss = epoch(params, opt_state, jax.random.key(e), x, y)
        held[0] = (params, opt_state)
        return params, loss

    return run


def apply_init_loop(problem: Problem, apply: Callable, init_params: Callable) -> Callable:
    """The idiom shared by raw JAX, stax, flax.linen and haiku: pure apply(params, x),
    optax.adam, a jitted step without donation, a Python loop over batches."""
    opt = optax.adam(LR)

    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(lambda p: xent(apply(p, x), y))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def state():
        params = init_params()
        return params, opt.init(params)

    return python_loop(problem, step, state)


def hand_jit_step(problem: Problem) -> Callable:
    """Hand-written JAX: a jitted step (no donation) called from a Python loop."""
    init, apply = raw_mlp(problem)
    return apply_init_loop(problem, apply, lambda: init(jax.random.key(1)))


def gemms_alone(problem: Problem) -> Callable:
    """The limit: only the matmuls of forward and backward, in a lax.scan like fit's."""
    init, _ = raw_mlp(problem)
    x, _ = problem.data()
    bs, steps = problem.batch_size, problem.steps

    @jax.jit
    def epoch(ws, x):
        def body(ws, i):
            xb = jax.lax.dynamic_slice_in_dim(x, i * bs, bs)
            acts = [xb]
            for w in ws:
                acts.append(acts[-1] @ w)
            g = acts[-1]
            new = []
            for layer in reversed(range(len(ws))):
                new.append(acts[layer].T @ g)
                if layer:
                    g = g @ ws[layer].T
            return [w + 1e-9 * d for w, d in zip(ws, reversed(new))], None

        ws, _ = jax.lax.scan(body, ws, jnp.arange(steps))
        return ws

    held = [[p["w"] for p in init(jax.random.key(1))]]

    def run():
        ws = held[0]
        for _ in range(problem.epochs):
            ws = epoch(ws, x)
        held[0] = ws
        return ws

    return run


def fnn_fit(problem: Problem, optimizer=None, nan_guard: bool = True, batch_size: int | None = None,
            **fit_kwargs) -> Callable:
    """fnn: the whole run is one fit call (progress off); ``fit_kwargs`` go to fit."""
    model = fnn.mlp(list(problem.sizes[1:]))
    optimizer = fnn.optimizers.adam(LR) if optimizer is None else optimizer
    x, y = problem.data()

    params = model.init(jax.random.key(1), (problem.sizes[0],))
    held = [(params, optimizer.init(params))]

    def run():
        params, opt_state = held[0]
        r = fnn.fit(model, params, optimizer, x, y, opt_state=opt_state, epochs=problem.epochs,
                    batch_size=batch_size or problem.batch_size, key=jax.random.key(0), progress=False,
                    donate=True, nan_guard=nan_guard, **fit_kwargs)
        held[0] = (r.params, r.opt_state)
        return r.params, r.history["train_loss"]

    return run


def fnn_train_step(problem: Problem) -> Callable:
    """fnn: make_train_step (jitted, donating) called from a Python loop."""
    model = fnn.mlp(list(problem.sizes[1:]))
    opt = fnn.optimizers.adam(LR)
    step = fnn.training.make_train_step(model, opt)

    def state():
        params = model.init(jax.random.key(1), (problem.sizes[0],))
        return params, opt.init(params)

    def two(params, opt_state, x, y):
        params, opt_state, _ = step(params, opt_state, x, y)
        return params, opt_state

    return python_loop(problem, two, state)


def stax_loop(problem: Problem) -> Callable:
    from jax.example_libraries import stax

    layers = []
    for f in problem.sizes[1:-1]:
        layers += [stax.Dense(f), stax.Relu]
    init_fn, apply_fn = stax.serial(*layers, stax.Dense(problem.sizes[-1]))
    return apply_init_loop(problem, apply_fn,
                            lambda: init_fn(jax.random.key(1), (-1, problem.sizes[0]))[1])


def flax_linen_loop(problem: Problem) -> Callable | None:
    if importlib.util.find_spec("flax") is None:
        return None
    import flax.linen as nn

    class MLP(nn.Module):
        features: tuple

        @nn.compact
        def __call__(self, x):
            for f in self.features[:-1]:
                x = nn.relu(nn.Dense(f)(x))
            return nn.Dense(self.features[-1])(x)

    model = MLP(tuple(problem.sizes[1:]))
    return apply_init_loop(problem, model.apply, lambda: model.init(
        jax.random.key(1), jnp.zeros((1, problem.sizes[0]))))


def haiku_loop(problem: Problem) -> Callable | None:
    if importlib.util.find_spec("haiku") is None:
        return None
    import haiku as hk

    net = hk.without_apply_rng(hk.transform(lambda x: hk.nets.MLP(list(problem.sizes[1:]))(x)))
    return apply_init_loop(problem, net.apply, lambda: net.init(
        jax.random.key(1), jnp.zeros((1, problem.sizes[0]))))


def equinox_loop(problem: Problem) -> Callable | None:
    if importlib.util.find_spec("equinox") is None:
        return None
    import equinox as eqx

    hidden = problem.sizes[1:-1]
    if len(set(hidden)) != 1:
        return None                      # eqx.nn.MLP has one width
    opt = optax.adam(LR)

    def loss_fn(model, x, y):
        return xent(jax.vmap(model)(x), y)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(loss_fn)(model, x, y)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state

    def state():
        model = eqx.nn.MLP(problem.sizes[0], problem.sizes[-1], hidden[0], len(hidden),
                           activation=jax.nn.relu, key=jax.random.key(1))
        return model, opt.init(eqx.filter(model, eqx.is_array))

    return python_loop(problem, step, state)


def flax_nnx_loop(problem: Problem) -> Callable | None:
    if importlib.util.find_spec("flax") is None:
        return None
    from flax import nnx

    sizes = problem.sizes

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs)
                                    for a, b in zip(sizes[:-1], sizes[1:])])

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = nnx.relu(layer(x))
            return self.layers[-1](x)

    @nnx.jit
    def update(model, optimizer, x, y):       # nnx updates model and optimizer in place
        grads = nnx.grad(lambda m: xent(m(x), y))(model)
        optimizer.update(model, grads)

    def step(model, optimizer, x, y):
        update(model, optimizer, x, y)
        return model, optimizer

    def state():
        model = MLP(nnx.Rngs(1))
        return model, nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)

    return python_loop(problem, step, state)


PEERS = {
    "stax": stax_loop,
    "flax.linen": flax_linen_loop,
    "haiku": haiku_loop,
    "equinox": equinox_loop,
    "flax.nnx": flax_nnx_loop,
}
