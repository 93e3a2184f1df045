"""The same CNN training written the way each library's docs recommend (see bench_cnn.py).

The network: ``conv(c, 3x3, SAME) -> relu`` for each ``c`` in ``channels``, one 2x2 max
pool, flatten, then dense layers (ReLU between them), softmax cross-entropy, Adam
(lr 1e-3). Every builder returns ``run() -> result``: one epoch of ``steps`` batches of
``batch_size`` from data built once, continuing from the previous call's params.
Python-loop variants step through a list of device batches prepared once.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import _peers  # the MLP benchmark's peers: their jitted-step loop
import fnn

LR = 1e-3
DN = ("NHWC", "HWIO", "NHWC")


@dataclasses.dataclass(frozen=True)
class CNNProblem:
    image: tuple            # (H, W, C)
    channels: tuple         # conv channels
    dense: tuple            # dense sizes, the last = classes
    batch_size: int
    steps: int
    epochs = 1              # one epoch per timed run, for _peers' loops

    @property
    def n(self) -> int:
        return self.batch_size * self.steps

    def data(self):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.n,) + self.image).astype(np.float32)
        y = rng.integers(0, self.dense[-1], self.n).astype(np.int32)
        return jnp.asarray(x), jnp.asarray(y)

    def batches(self):
        x, y = self.data()
        return [(x[i * self.batch_size:(i + 1) * self.batch_size], y[i * self.batch_size:(i + 1) * self.batch_size])
                for i in range(self.steps)]

    @property
    def flat(self) -> int:
        h, w, _ = self.image
        return (h // 2) * (w // 2) * self.channels[-1]


def raw_cnn(problem: CNNProblem):
    """Hand-written params and forward over lax.conv_general_dilated."""
    def init(key):
        params, c_in = [], problem.image[-1]
        keys = iter(jax.random.split(key, len(problem.channels) + len(problem.dense)))
        for c in problem.channels:
            w = jax.random.normal(next(keys), (3, 3, c_in, c)) * np.sqrt(2 / (9 * c_in))
            params.append((w, jnp.zeros(c)))
            c_in = c
        n_in = problem.flat
        for d in problem.dense:
            params.append((jax.random.normal(next(keys), (n_in, d)) * np.sqrt(1 / n_in), jnp.zeros(d)))
            n_in = d
        return params

    def apply(params, x):
        k = len(problem.channels)
        for w, b in params[:k]:
            x = jax.nn.relu(jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN) + b)
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        x = x.reshape(x.shape[0], -1)
        for i, (w, b) in enumerate(params[k:]):
            x = x @ w + b
            if i < len(problem.dense) - 1:
                x = jax.nn.relu(x)
        return x

    return init, apply


def hand_scan(problem: CNNProblem) -> Callable:
    """Hand-written JAX: one jitted epoch, a lax.scan over batches, optax Adam."""
    return _peers.scanned_epochs(problem, *raw_cnn(problem))


def hand_step(problem: CNNProblem) -> Callable:
    """The same hand-written step jitted alone, called per batch from Python (no loop around the convs)."""
    init, apply = raw_cnn(problem)
    return _peers.apply_init_loop(problem, apply, lambda: init(jax.random.key(1)))


def fnn_model(problem: CNNProblem):
    return fnn.cnn(problem.channels, problem.dense)


def fnn_fit(problem: CNNProblem) -> Callable:
    """fnn: one ``fit`` call per epoch (progress off, donated buffers)."""
    model = fnn_model(problem)
    opt = fnn.optimizers.adam(LR)
    x, y = problem.data()
    params = model.init(jax.random.key(1), problem.image)
    held = [(params, opt.init(params))]

    def run():
        r = fnn.fit(model, held[0][0], opt, x, y, opt_state=held[0][1], epochs=1, batch_size=problem.batch_size,
                    key=jax.random.key(0), progress=False, donate=True)
        held[0] = (r.params, r.opt_state)
        return r.history["train_loss"]

    return run


def convs_alone(problem: CNNProblem):
    """Forward + backward of the conv layers only (the same shapes), for the FLOP-rate ceiling."""
    init, _ = raw_cnn(problem)
    convs = init(jax.random.key(1))[:len(problem.channels)]
    x = problem.data()[0][:problem.batch_size]

    def forward(convs, x):
        for w, b in convs:
            x = jax.nn.relu(jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN) + b)
        return jnp.sum(x)

    fn = jax.jit(jax.grad(forward, argnums=(0, 1)))
    return fn, (convs, x)


def flax_linen_loop(problem: CNNProblem) -> Callable | None:
    if importlib.util.find_spec("flax") is None:
        return None
    import flax.linen as nn

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            for c in problem.channels:
                x = nn.relu(nn.Conv(c, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
            x = x.reshape((x.shape[0], -1))
            for i, d in enumerate(problem.dense):
                x = nn.Dense(d)(x)
                x = nn.relu(x) if i < len(problem.dense) - 1 else x
            return x

    model = CNN()
    init = lambda: model.init(jax.random.key(1), jnp.zeros((1,) + problem.image))  # noqa: E731
    return _peers.apply_init_loop(problem, model.apply, init)


def flax_nnx_loop(problem: CNNProblem) -> Callable | None:
    if importlib.util.find_spec("flax") is None:
        return None
    from flax import nnx

    class CNN(nnx.Module):
        def __init__(self, rngs):
            c_in, convs = problem.image[-1], []
            for c in problem.channels:
                convs.append(nnx.Conv(c_in, c, (3, 3), rngs=rngs))
                c_in = c
            self.convs = nnx.List(convs)
            sizes = (problem.flat,) + problem.dense
            self.dense = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

        def __call__(self, x):
            for conv in self.convs:
                x = nnx.relu(conv(x))
            x = nnx.max_pool(x, (2, 2), (2, 2))
            x = x.reshape((x.shape[0], -1))
            for layer in self.dense[:-1]:
                x = nnx.relu(layer(x))
            return self.dense[-1](x)

    @nnx.jit
    def update(model, optimizer, x, y):
        grads = nnx.grad(lambda m: _peers.xent(m(x), y))(model)
        optimizer.update(model, grads)

    def step(model, optimizer, x, y):
        update(model, optimizer, x, y)
        return model, optimizer

    def state():
        model = CNN(nnx.Rngs(1))
        return model, nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)

    return _peers.python_loop(problem, step, state)


def equinox_loop(problem: CNNProblem) -> Callable | None:
    if importlib.util.find_spec("equinox") is None:
        return None
    import equinox as eqx

    def build(key):
        keys = iter(jax.random.split(key, 8))
        layers, c_in = [], problem.image[-1]
        for c in problem.channels:   # equinox is channels-first, per example (vmapped)
            layers += [eqx.nn.Conv2d(c_in, c, 3, padding="SAME", key=next(keys)), jax.nn.relu]
            c_in = c
        layers += [eqx.nn.MaxPool2d(2, 2), jnp.ravel]
        sizes = (problem.flat,) + problem.dense
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(eqx.nn.Linear(a, b, key=next(keys)))
            if i < len(problem.dense) - 1:
                layers.append(jax.nn.relu)
        return eqx.nn.Sequential([eqx.nn.Lambda(f) if not isinstance(f, eqx.Module) else f for f in layers])

    opt = optax.adam(LR)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        grads = eqx.filter_grad(lambda m: _peers.xent(jax.vmap(m)(jnp.moveaxis(x, -1, 1)), y))(model)
        updates, opt_state = opt.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state

    def state():
        model = build(jax.random.key(1))
        return model, opt.init(eqx.filter(model, eqx.is_array))

    return _peers.python_loop(problem, step, state)


def torch_loop(problem: CNNProblem) -> Callable | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    layers, c_in = [], problem.image[-1]
    for c in problem.channels:
        layers += [torch.nn.Conv2d(c_in, c, 3, padding="same"), torch.nn.ReLU()]
        c_in = c
    layers += [torch.nn.MaxPool2d(2), torch.nn.Flatten()]
    sizes = (problem.flat,) + problem.dense
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(problem.dense) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = [(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()), torch.from_numpy(np.array(y)).long())
               for x, y in problem.batches()]

    def run():
        for xb, yb in batches:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        return None

    return run


def keras_fit(problem: CNNProblem, steps_per_execution: int) -> Callable | None:
    if importlib.util.find_spec("keras") is None:
        return None
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.backend.backend() != "jax":
        return None
    layers = [keras.Input(problem.image)]
    layers += [keras.layers.Conv2D(c, 3, padding="same", activation="relu") for c in problem.channels]
    layers += [keras.layers.MaxPooling2D(2), keras.layers.Flatten()]
    layers += [keras.layers.Dense(d, activation="relu" if i < len(problem.dense) - 1 else None)
               for i, d in enumerate(problem.dense)]
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(LR),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution, jit_compile=True)
    x, y = (np.asarray(a) for a in problem.data())

    def run():
        model.fit(x, y, batch_size=problem.batch_size, epochs=1, shuffle=True, verbose=0)
        return None

    return run


PEERS = {"flax.linen": flax_linen_loop, "flax.nnx": flax_nnx_loop, "equinox": equinox_loop,
         "torch": torch_loop, "keras": lambda p: keras_fit(p, 1),
         "keras[steps_per_execution]": lambda p: keras_fit(p, p.steps)}
