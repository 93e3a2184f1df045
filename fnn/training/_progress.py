"""A dependency-free progress bar for the epoch driver (host side only)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def default_enabled(stream: TextIO | None = None) -> bool:
    """On by default when the stream is a terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


class ProgressBar:
    """``epoch 3/20 [======>       ] train_loss 0.1234 eval_accuracy 0.9700 | 812 steps/s``.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) one line is
    printed per update.
    """

    def __init__(self, total: int, *, steps_per_epoch: int, stream: TextIO | None = None,
                 width: int = 24, start: int = 0):
        self.total, self.steps_per_epoch, self.width = total, steps_per_epoch, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = default_enabled(self.stream)
        self.start_epoch = start
        self.t0 = time.perf_counter()

    def update(self, epoch: int, values: dict[str, float]) -> None:
        done = int(self.width * epoch / max(self.total, 1))
        bar = "=" * done + (">" if done < self.width else "") + " " * max(self.width - done - 1, 0)
        elapsed = time.perf_counter() - self.t0
        rate = (epoch - self.start_epoch) * self.steps_per_epoch / elapsed if elapsed > 0 else 0.0
        shown = " ".join(f"{k} {v:.4f}" for k, v in values.items())
        line = f"epoch {epoch}/{self.total} [{bar}] {shown} | {rate:,.0f} steps/s"
        if self.tty:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
