r"""11 — A convolutional network on the digits: the MLP with shared local weights.

What it teaches: the notes' MLP connects each hidden unit to all 64 pixels. A
convolutional layer (``fnn.layers.conv``) connects each unit to a 3x3 window only and
uses the SAME nine weights at every position of the image, so a stroke detector learned
in one place works everywhere, with far fewer weights. ``fnn.cnn`` stacks such layers
(32 and 64 channels, ReLU), a 2x2 max pool and a dense layer of 10 logits; ``fnn.summary``
prints its layers, shapes, params and FLOPs. The plots show what was learned: the 32
first-layer filters (each a 3x3 weight pattern) and the 32 feature maps they produce
on one test digit (where in the image each filter responds).

The same run is ``fnn train --model cnn`` on the command line.

Run (needs the ``data`` extra, ``pip install "fnn[data]"``)::

    python examples/11_cnn_digits.py          # ~20 s of training on 2 CPU cores
    python examples/11_cnn_digits.py --tiny   # seconds (what the tests run)

Writes ``11_cnn_filters.png`` into ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

import fnn


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description="A CNN on the digits data with fnn.fit.")
    parser.add_argument("--tiny", action="store_true", help="small model, 2 epochs (smoke test)")
    parser.add_argument("--out", default="runs/examples", help="folder for the plot")
    parser.add_argument("--seed", type=int, default=0, help="seed of split, init and batch order")
    args = parser.parse_args(argv)
    channels, epochs = ((8, 8), 2) if args.tiny else ((32, 64), 20)

    k_data, k_init, k_order = jax.random.split(jax.random.key(args.seed), 3)
    data = fnn.datasets.load("digits", key=k_data)
    model = fnn.cnn(channels, (data.num_classes,), image_shape=(8, 8, 1))
    print(fnn.summary(model, (64,)))
    params = model.init(k_init, (64,))
    t0 = time.perf_counter()
    result = fnn.fit(model, params, fnn.optimizers.adam(2e-3), data.x_train, data.y_train, epochs=epochs,
                     batch_size=64, key=k_order, eval_data=(data.x_test, data.y_test), progress=False)
    accuracy = float(result.history["eval_accuracy"][-1])
    print(f"{epochs} epochs in {time.perf_counter() - t0:.2f} s (compilation included); "
          f"test accuracy {accuracy:.4f}")

    # The first conv layer is part 1 of the serial (part 0 reshapes 64 pixels to 8x8x1).
    reshape_layer, first_conv = fnn.layers.reshape((8, 8, 1)), fnn.layers.conv(channels[0], (3, 3))
    image = reshape_layer.apply(result.params[0], data.x_test[:1])
    maps = np.asarray(fnn.relu(first_conv.apply(result.params[1], image)))[0]  # (8, 8, C)
    filters = np.asarray(result.params[1]["w"])[:, :, 0, :]                    # (3, 3, C)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return accuracy
    c = filters.shape[-1]
    cols = min(c, 8)
    rows = -(-c // cols)
    fig, axes = plt.subplots(2 * rows + 1, cols, figsize=(1.4 * cols, 1.4 * (2 * rows + 1)))
    axes = np.atleast_2d(axes)
    for ax in axes.flat:
        ax.axis("off")
    axes[0, 0].imshow(np.asarray(image)[0, :, :, 0], cmap="gray_r")
    axes[0, 0].set_title(f"digit {int(data.y_test[0])}", fontsize=8)
    for i in range(c):
        r, col = divmod(i, cols)
        axes[1 + r, col].imshow(filters[:, :, i], cmap="RdBu_r")
        axes[1 + rows + r, col].imshow(maps[:, :, i], cmap="viridis")
    axes[1, 0].set_title("filters (3x3 weights)", fontsize=8, loc="left")
    axes[1 + rows, 0].set_title("feature maps of the digit", fontsize=8, loc="left")
    os.makedirs(args.out, exist_ok=True)
    print(f"plot written to {fnn.plots.save(fig, os.path.join(args.out, '11_cnn_filters.png'))}")
    return accuracy


if __name__ == "__main__":
    main()
