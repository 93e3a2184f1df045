"""Peers outside JAX's functional family: Keras 3 on the JAX backend and PyTorch on CPU.

Both train the same MLP (He-initialised dense layers, ReLU, Adam 1e-3, softmax
cross-entropy over integer labels) for ``epochs`` passes over ``steps`` shuffled
batches, the way their docs recommend: ``model.fit`` for Keras (with and without
``steps_per_execution``), the standard ``zero_grad / backward / step`` loop for PyTorch
with ``torch.set_num_threads`` = the CPU cores.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Callable

import numpy as np

from _peers import LR, Problem


def keras_fit(problem: Problem, steps_per_execution: int = 1) -> Callable | None:
    if importlib.util.find_spec("keras") is None:
        return None
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.backend.backend() != "jax":
        return None
    x, y = (np.asarray(a) for a in problem.data())
    layers = [keras.Input((problem.sizes[0],))]
    layers += [keras.layers.Dense(f, activation="relu", kernel_initializer="he_normal")
               for f in problem.sizes[1:-1]]
    layers.append(keras.layers.Dense(problem.sizes[-1]))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(LR),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution, jit_compile=True)

    def run():
        h = model.fit(x, y, batch_size=problem.batch_size, epochs=problem.epochs, shuffle=True,
                      verbose=0)
        return np.asarray(h.history["loss"])

    return run


def torch_loop(problem: Problem) -> Callable | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(1)
    x, y = (torch.from_numpy(np.asarray(a)) for a in problem.data())
    y = y.long()
    layers: list = []
    for a, b in zip(problem.sizes[:-2], problem.sizes[1:-1]):
        linear = torch.nn.Linear(a, b)
        torch.nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        layers += [linear, torch.nn.ReLU()]
    layers.append(torch.nn.Linear(problem.sizes[-2], problem.sizes[-1]))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    bs = problem.batch_size

    def run():
        for _ in range(problem.epochs):
            order = torch.randperm(problem.n)
            for i in range(problem.steps):
                idx = order[i * bs:(i + 1) * bs]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
        return loss.item()

    return run


PEERS = {
    "keras-jax": keras_fit,
    "keras-jax[spe]": lambda problem: keras_fit(problem, steps_per_execution=problem.steps),
    "torch": torch_loop,
}
