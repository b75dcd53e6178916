"""A progress line on stderr for the command line's fits: a step callback.

    [#########...........]  1,200/3,000 steps  4.1M rows/s  ewa inertia 0.8123  ETA 2s

Redrawn at most ten times a second (and after the last step), on a terminal only: the
command line turns it off when stderr is not one, or with --quiet.
"""

import time

_WIDTH = 20
_REDRAW_SECONDS = 0.1


class ProgressLine:
    """Call it with each step's record (``set_callbacks``); ``close`` ends the line.

    Parameters
    ----------
    stream : file
        Where the line is drawn (stderr).
    max_steps : int
        The most steps the fit can run (the bar's end; early stopping ends it sooner).
    batch_size : int
        Rows per step, for the rate.
    clock : callable
        Seconds (``time.monotonic``; tests give their own).
    """

    def __init__(self, stream, max_steps, batch_size, clock=time.monotonic):
        self.stream = stream
        self.max_steps = max(int(max_steps), 1)
        self.batch_size = batch_size
        self.clock = clock
        self.drawn = None
        self.line = ""

    def __call__(self, record):
        now = self.clock()
        if (
            self.drawn is not None
            and now - self.drawn < _REDRAW_SECONDS
            and record.stop_reason is None
        ):
            return False
        self.drawn = now
        self.line = self.render(record)
        self.stream.write("\r" + self.line)
        self.stream.flush()
        return False

    def render(self, record):
        """The line for this step."""
        done = min(record.step / self.max_steps, 1.0)
        filled = round(done * _WIDTH)
        parts = [
            f"[{'#' * filled}{'.' * (_WIDTH - filled)}]",
            f"{record.step:,}/{self.max_steps:,} steps",
        ]
        if record.elapsed > 0:
            parts.append(f"{_si(record.step * self.batch_size / record.elapsed)} rows/s")
        if record.ewa_inertia is not None:
            parts.append(f"ewa inertia {record.ewa_inertia:.6g}")
        if record.stop_reason is None and record.step < self.max_steps and record.elapsed > 0:
            remaining = record.elapsed / record.step * (self.max_steps - record.step)
            parts.append(f"ETA {_duration(remaining)}")
        elif record.stop_reason is not None:
            parts.append(f"stopped: {record.stop_reason.replace('_', ' ')}")
        return "  ".join(parts)

    def close(self):
        """End the line (if one was drawn)."""
        if self.drawn is not None:
            self.stream.write("\n")
            self.stream.flush()


def _si(value):
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= threshold:
            return f"{value / threshold:.1f}{suffix}"
    return f"{value:.0f}"


def _duration(seconds):
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
