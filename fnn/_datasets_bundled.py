r"""Real datasets bundled with scikit-learn, for :mod:`fnn.datasets` (the ``data`` extra).

Public through ``fnn.datasets``. Nothing is downloaded: the CSV files ship inside the
scikit-learn package. They are read directly (importing scikit-learn takes over a second),
falling back to scikit-learn's own loaders if the files are not where expected.
"""

from __future__ import annotations

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np

_BUNDLED = {"digits": ("digits.csv.gz", 0, (1797, 64)), "breast_cancer": ("breast_cancer.csv", 1, (569, 30)),
            "iris": ("iris.csv", 1, (150, 4))}


def _bundled(name: str) -> tuple[jax.Array, jax.Array]:
    """Features float32 and labels int32 of a dataset shipped inside scikit-learn."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"fnn.datasets.{name}() reads data bundled with scikit-learn, which is not "
                          'installed; install the "data" extra: pip install "fnn[data]"')
    file, skip, shape = _BUNDLED[name]
    try:  # the CSV directly: importing sklearn costs more than a second of start-up
        table = np.loadtxt(os.path.join(spec.submodule_search_locations[0], "datasets", "data", file),
                           delimiter=",", skiprows=skip, ndmin=2)
        if table.shape != (shape[0], shape[1] + 1):
            raise ValueError(f"unexpected shape {table.shape}")
        x, y = table[:, :-1], table[:, -1]
    except (OSError, ValueError, TypeError, IndexError):  # another layout: ask scikit-learn
        from sklearn import datasets as sk_datasets

        bunch = getattr(sk_datasets, f"load_{name}")()
        x, y = bunch.data, bunch.target
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)


def digits() -> tuple[jax.Array, jax.Array]:
    r"""The UCI handwritten digits bundled with scikit-learn: 1,797 8x8 images, 10 classes.

    Pixels are ink counts in 0..16, flattened row by row; several border pixels are always
    0 (:func:`fit_standardizer` leaves those at 0). Needs ``pip install "fnn[data]"``.

    Returns:
      ``x`` float32 ``(1797, 64)``, ``y`` int32 in ``[0, 10)`` of shape ``(1797,)``.

    Raises:
      ImportError: scikit-learn is not installed (the message names the ``data`` extra).

    Example:
      >>> x, y = digits()
      >>> x.shape, float(x.max()), int(y.max())
      ((1797, 64), 16.0, 9)
    """
    return _bundled("digits")


def breast_cancer() -> tuple[jax.Array, jax.Array]:
    r"""The Wisconsin breast cancer data bundled with scikit-learn: 569 x 30, binary.

    Features span very different scales (areas in the thousands, smoothness near 0.1), so
    standardise them. ``y`` is 0 for malignant, 1 for benign (scikit-learn's coding).
    Needs ``pip install "fnn[data]"``.

    Returns:
      ``x`` float32 ``(569, 30)``, ``y`` int32 in {0, 1} of shape ``(569,)``.

    Raises:
      ImportError: scikit-learn is not installed (the message names the ``data`` extra).

    Example:
      >>> x, y = breast_cancer()
      >>> x.shape, jnp.bincount(y).tolist()
      ((569, 30), [212, 357])
    """
    return _bundled("breast_cancer")


def iris() -> tuple[jax.Array, jax.Array]:
    r"""Fisher's iris data bundled with scikit-learn: 150 flowers x 4 measurements, 3 species.

    Needs ``pip install "fnn[data]"``.

    Returns:
      ``x`` float32 ``(150, 4)`` (cm), ``y`` int32 in ``[0, 3)`` of shape ``(150,)``.

    Raises:
      ImportError: scikit-learn is not installed (the message names the ``data`` extra).

    Example:
      >>> x, y = iris()
      >>> x.shape, jnp.bincount(y).tolist()
      ((150, 4), [50, 50, 50])
    """
    return _bundled("iris")
