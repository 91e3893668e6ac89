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
    """Context manager; ``requested`` turns true at the first SIGINT or SIGTERM (and SIGHUP with ``hangup``).

    Active only where the trainer can act on it alone: the main thread of a
    single process without DataLoader workers (workers die on the terminal's
    SIGINT, and under torchrun every rank would have to stop at the same step).
    A second SIGINT or SIGTERM raises KeyboardInterrupt; a second SIGHUP does
    not: a closing terminal sends two (the shell's to its jobs, the kernel's
    to the foreground group when the shell exits), and neither is a person
    insisting. Under nohup (SIGHUP ignored) a hangup stays ignored.
    """

    def __init__(self, enabled: bool = True, hangup: bool = False) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signals = [signal.SIGINT, signal.SIGTERM]
        if hangup and hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            self.signals.append(signal.SIGHUP)
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested and signum != getattr(signal, "SIGHUP", None):
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "DeferredInterrupt":
        if self.enabled:
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
