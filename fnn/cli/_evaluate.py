"""``fnn evaluate``: re-score the checkpoint of a complete run folder (private)."""

from __future__ import annotations

import argparse
import os

from fnn.cli import _folder
from fnn.cli._run import accuracy_text, init, score, setup, split_state

__all__ = ["evaluate"]


def evaluate(args: argparse.Namespace, started: float) -> int:
    import jax
    import fnn

    if os.path.isdir(args.path):
        folder, checkpoint = args.path, os.path.join(args.path, _folder.CHECKPOINT)
    elif os.path.isfile(args.path):
        folder, checkpoint = os.path.dirname(args.path) or ".", args.path
    else:
        raise ValueError(f"path must be an output folder of 'fnn train' or its {_folder.CHECKPOINT}; "
                         f"got {args.path!r}, which does not exist")
    config = _folder.read_run(folder)["config"]
    data, model, _, _ = setup(config)
    like, state = split_state(model, jax.eval_shape(
        lambda k: init(model, k, data.x_train.shape[1:], config["ensemble"]), jax.random.key(0)))
    params = fnn.checkpoint.load(checkpoint, like=like)
    if jax.tree.leaves(state):  # batch norm's running averages, saved beside the params
        state = fnn.checkpoint.load(os.path.join(folder, _folder.MODEL_STATE), like=state)
    scores, _, _ = score(model, params, data, config["ensemble"], state)
    print(f"{checkpoint}: {config['data']} {accuracy_text(scores, config['ensemble'])} | "
          f"{data.x_test.shape[0]} examples")
    return 0
