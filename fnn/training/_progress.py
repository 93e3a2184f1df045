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
                 width: int = 24):
        self.total, self.steps_per_epoch, self.width = total, steps_per_epoch, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = default_enabled(self.stream)
        self.first: tuple[int, float] | None = None   # (epoch, time) of the first update

    def update(self, epoch: int, values: dict[str, float]) -> None:
        done = int(self.width * epoch / max(self.total, 1))
        bar = "=" * done + (">" if done < self.width else "") + " " * max(self.width - done - 1, 0)
        now = time.perf_counter()
        shown = " ".join(f"{k} {v:.4f}" for k, v in values.items())
        line = f"epoch {epoch}/{self.total} [{bar}] {shown}"
        # The first update waited for compilation: rates count from it onwards.
        if self.first is None:
            self.first = (epoch, now)
        elif now > self.first[1]:
            rate = (epoch - self.first[0]) * self.steps_per_epoch / (now - self.first[1])
            line += f" | {rate:,.0f} steps/s"
        if self.tty:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
