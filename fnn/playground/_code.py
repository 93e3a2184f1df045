""""Show the code": the fnn script that reproduces a page's run (private)."""

from __future__ import annotations

from fnn.playground._config import Config

__all__ = ["script"]


def script(config: Config, epochs: int) -> str:
    """A runnable script that trains ``config`` for ``epochs`` epochs and prints the page's loss.

    Example:
      >>> print(script(Config(), 20).splitlines()[0])
      import jax
    """
    c = config
    options = f"n={c.points}, noise={c.noise!r}" + (", centers=2" if c.data == "blobs" else "")
    head = [
        "import jax",
        "import fnn",
        *(["import optax"] if c.model == "network" and c.weight_decay else []),
        "",
        f"k_data, k_init, k_order = jax.random.split(jax.random.key({c.seed}), 3)",
        f"data = fnn.datasets.load({c.data!r}, key=k_data, test_fraction={c.test_fraction!r}, {options})",
    ]
    if c.model == "perceptron":
        body = [
            "params, history = fnn.perceptron.fit(fnn.perceptron.init(2), data.x_train, data.y_train,",
            f"                                     learning_rate={c.learning_rate!r}, max_epochs={max(epochs, 1)})",
            "test_error = (fnn.perceptron.predict(params, data.x_test) != data.y_test).mean()",
            'print(f"epochs {int(history.epochs)} converged {bool(history.converged)} "',
            '      f"test error {float(test_error):.9g}")',
        ]
    else:
        opt = f"fnn.optimizers.{c.optimizer}({c.learning_rate!r})"
        if c.weight_decay:
            opt = f"optax.chain(optax.add_decayed_weights({c.weight_decay!r}), {opt})"
        if c.dropout:     # the general model: dropout in training, the whole network in evaluation
            body = [f"model = fnn.mlp({list(c.hidden) + [2]}, {c.activation!r}, dropout={c.dropout!r})",
                    "params, state = model.init(k_init, (2,))"]
        else:
            body = [f"model = fnn.mlp({list(c.hidden) + [2]}, {c.activation!r})",
                    "params = model.init(k_init, (2,))"]
        body += [
            f"result = fnn.fit(model, params, {opt}, data.x_train, data.y_train,",
            f"                 epochs={epochs}, batch_size={c.batch_size}, key=k_order,",
            "                 eval_data=(data.x_test, data.y_test), progress=False"
            + (", state=state)" if c.dropout else ")"),
            'print(f"epoch {result.epoch} test loss {float(result.history[\'eval_loss\'][-1]):.9g}")',
        ]
    return "\n".join(head + body) + "\n"
