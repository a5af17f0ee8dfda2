"""Progress output for long runs: a live line on a terminal, a periodic log line otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int, stream=None, interval: float = 10.0,
                 enabled: bool = True, unit: str = "docs"):
        self.label = label
        self.unit = unit
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.2 if self.tty else interval
        self.enabled = enabled
        self.started = time.monotonic()
        self.last = 0.0
        self.done = 0
        self.extra = ""

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        self.done, self.extra = done, extra
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < self.interval):
            return
        self.last = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            width = 24
            filled = int(width * self.done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            line = f"{self.label} [{bar}] {self.done}/{self.total} {self.unit}"
        else:
            line = f"{self.label} {self.done} {self.unit}"
        line += f"  {rate:.1f} {self.unit}/s" if rate >= 1 else f"  {rate:.3f} {self.unit}/s"
        if self.total and rate > 0 and self.done < self.total:
            line += f"  ETA {_clock((self.total - self.done) / rate)}"
        line += f"  {self.extra}"
        if self.tty:
            self.stream.write("\r" + line.ljust(100)[:160])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.update(self.done, self.extra, force=True)
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
