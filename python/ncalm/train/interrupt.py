"""Ctrl-C (or SIGTERM: a plain kill, a scheduler's pre-emption) during training, deferred to the end of
the optimizer step.

At a step boundary the model, optimizer, RNG and data position are exactly
those of an uninterrupted run, so a checkpoint written there resumes it bit
for bit; one written mid-step (or mid-update) would not. A second signal
stops at once, for a step that takes too long.
"""
from __future__ import annotations

import signal
import threading


class DeferredInterrupt:
    """Context manager; ``requested`` turns true at the first SIGINT or SIGTERM.

    Active only where the trainer can act on it alone: the main thread of a
    single process without DataLoader workers (workers die on the terminal's
    SIGINT, and under torchrun every rank would have to stop at the same step).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "DeferredInterrupt":
        if self.enabled:
            self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
