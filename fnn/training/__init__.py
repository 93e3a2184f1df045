r"""Compiled training: a pure train step, ``fit`` as one XLA program, evaluation.

.. code-block:: python

    result = fnn.fit(model, params, fnn.optimizers.adam(1e-3), x, y,
                     epochs=30, batch_size=64, key=jax.random.key(0),
                     eval_data=(x_test, y_test))
    result.params, result.history["eval_accuracy"]

A general model (:class:`fnn.layers.StatefulLayer`: dropout, batch norm) trains the
same way with its state: ``params, state = model.init(...)``, ``fit(..., state=state)``,
then ``result.state`` and ``evaluate(..., state=result.state)``.

Data larger than the device train from batches on the host:
``fit_batches(model, params, optimizer, batches, epochs=..., steps_per_call=...)``, with
``batches`` an iterable of ``(x, y)`` (a generator, a Grain loader, memory-mapped slices).
"""

from fnn.training._batches import fit_batches
from fnn.training._driver import Interrupted
from fnn.training._early import EarlyStopping
from fnn.training._evaluate import evaluate
from fnn.training._fit import fit
from fnn.training._keys import step_key
from fnn.training._order import epoch_order
from fnn.training._ensemble import fit_ensemble, fit_sweep, init_ensemble
from fnn.training._results import FitResult, NonFiniteReport
from fnn.training._step import make_train_step, train_step

__all__ = ["train_step", "make_train_step", "fit", "evaluate", "FitResult", "NonFiniteReport",
           "init_ensemble", "fit_ensemble", "fit_sweep", "epoch_order", "step_key", "Interrupted",
           "EarlyStopping", "fit_batches"]
