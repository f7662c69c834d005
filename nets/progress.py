"""Progress of long network runs on stderr: a tqdm bar on a terminal, plain log lines otherwise.

Every line names what is running (``[fig1/full group 2 (batch size 50)] epoch 12/200 training``)
and the phase (training, evaluation, ``measuring hessian_top_eigenvalue (lr0p1_bs50)``), so a log
shows where the time goes. Plain lines (when stderr is not a terminal, or tqdm is missing) carry
no control codes and come at most every ``interval`` seconds, plus one at every phase change that
lasts, so redirected logs stay readable.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

__all__ = ["Progress", "format_seconds"]


def format_seconds(s: float) -> str:
    """12 s, 3.4 min, 2.1 h."""
    if s != s or s == float("inf"):
        return "?"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class Progress:
    """``Progress(label, total)``; ``phase(name)`` names what runs now, ``update(n)`` counts units done."""

    def __init__(self, label: str, total: int, *, initial: int = 0, unit: str = "epoch", enabled: bool = True,
                 stream: Optional[TextIO] = None, interval: float = 30.0, tty: Optional[bool] = None):
        self.label, self.total, self.done, self.unit = label, int(total), int(initial), unit
        self.enabled, self.stream, self.interval = enabled, stream or sys.stderr, float(interval)
        self.phase_name = ""
        self._start = time.perf_counter()
        self._start_done = self.done
        self._last_line = -1e18
        self._bar = None
        if not enabled:
            return
        is_tty = self.stream.isatty() if tty is None else tty
        if is_tty:
            try:
                from tqdm.auto import tqdm
                self._bar = tqdm(total=self.total, initial=self.done, desc=label, unit=unit, leave=False,
                                 file=self.stream)
            except ImportError:
                self._bar = None
        if self._bar is None:
            self._line(f"start, {self.total - self.done} {unit}(s) to go")

    def _eta(self) -> str:
        rate_n = self.done - self._start_done
        if rate_n <= 0 or self.done >= self.total:
            return ""
        per = (time.perf_counter() - self._start) / rate_n
        return f", {format_seconds(per)}/{self.unit}, about {format_seconds(per * (self.total - self.done))} left"

    def _line(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=self.stream, flush=True)
        self._last_line = time.perf_counter()

    def phase(self, name: str) -> None:
        """Name what runs now (e.g. "evaluation", "measuring alignment (lr0p1_bs50)")."""
        if not self.enabled or name == self.phase_name:
            return
        self.phase_name = name
        if self._bar is not None:
            self._bar.set_postfix_str(name, refresh=True)
        elif name.startswith("measuring") or time.perf_counter() - self._last_line >= self.interval:
            self._line(f"{self.unit} {self.done}/{self.total}: {name}")

    def update(self, n: int = 1, **info) -> None:
        if not self.enabled:
            return
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if info:
                self._bar.set_postfix(info, refresh=False)
        elif time.perf_counter() - self._last_line >= self.interval or self.done >= self.total:
            extra = "".join(f", {k} {v}" for k, v in info.items())
            self._line(f"{self.unit} {self.done}/{self.total} done{extra}{self._eta()}")

    def close(self, text: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        if text:
            self._line(text)
