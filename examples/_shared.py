"""The plumbing the numbered examples share: their command line, their pyplot, their loop.

Not an example itself (no number, so the tests do not run it): each ``NN_<topic>.py``
imports it as ``_shared``, which works because ``python examples/NN_<topic>.py`` puts
the examples folder first on ``sys.path``. What an example teaches stays in the
example; only what several of them would otherwise write out again lives here.
"""

from __future__ import annotations

import argparse

import jax

import fnn


def parser(doc: str, *, tiny: str, out: str = "folder for the plot",
           seed: str | None = None) -> argparse.ArgumentParser:
    """The arguments every example takes; add its own, then ``parse_args(argv)``.

    Args:
      doc: the example's ``__doc__`` (or a one-line description): its first line is the
        ``--help`` description.
      tiny: what ``--tiny`` (the size the tests run) makes smaller.
      out: the help of ``--out``, the folder for the plots (default ``runs/examples``).
      seed: the help of ``--seed`` (an int, default 0); no ``--seed`` when None.
    """
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help=tiny)
    p.add_argument("--out", default="runs/examples", help=out)
    if seed is not None:
        p.add_argument("--seed", type=int, default=0, help=seed)
    return p


def pyplot_or_none():
    """``matplotlib.pyplot`` on the Agg backend, or None (and a line saying so) without it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    return plt


def save(fig, path: str) -> None:
    """Write ``fig`` to ``path`` with :func:`fnn.plots.save` and say where."""
    print(f"plot written to {fnn.plots.save(fig, path)}")


def train_recording(model, params, optimizer, x, y, *, record, epochs: int, batch_size: int,
                    key: jax.Array, loss=fnn.losses.softmax_cross_entropy):
    """Minibatch training as one compiled scan over epochs, recording after each epoch.

    Epoch ``e`` visits ``x`` in the order ``jax.random.permutation(keys[e], n)`` with
    ``keys = jax.random.split(key, epochs)``, in ``n // batch_size`` full batches (the
    last ``n % batch_size`` of that order are left out), one optimizer step a batch.

    Args:
      record: ``record(params, losses)``, called (traced) at the end of every epoch with
        the params after it and the loss of each of its steps ``(n // batch_size,)``;
        returns the pytree of what the example measures.
      loss: ``loss(model.apply(params, xb), yb)``, a scalar.

    Returns:
      What ``record`` returned, stacked over the epochs (a leading axis of ``epochs``).
    """
    n_batches = x.shape[0] // batch_size

    def loss_fn(p, xb, yb):
        return loss(model.apply(p, xb), yb)

    def step(carry, batch):
        p, s = carry
        value, grads = jax.value_and_grad(loss_fn)(p, *batch)
        updates, s = optimizer.update(grads, s, p)
        return (fnn.optimizers.apply_updates(p, updates), s), value

    def epoch(carry, k):
        order = jax.random.permutation(k, x.shape[0])[:n_batches * batch_size].reshape(n_batches, -1)
        carry, losses = jax.lax.scan(step, carry, (x[order], y[order]))
        return carry, record(carry[0], losses)

    run = jax.jit(lambda p: jax.lax.scan(epoch, (p, optimizer.init(p)), jax.random.split(key, epochs)))
    return run(params)[1]
