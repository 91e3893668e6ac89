"""One writer per output folder, and no temp files left by dead ones.

:func:`exclusive` takes an advisory lock (``fcntl.flock``) on ``.ncalm-lock``
in the folder for as long as a command writes there; a second writer is
refused by name instead of racing the first over its temp files. The kernel
drops the lock when its holder dies (also by kill -9), so a stale lock never
blocks a resume; forked children (DataLoader and tokenize workers) close
their copies of it, which would otherwise hold it past the holder's
death. The holder unlinks the file as it leaves, still holding it (output
folders are read by other tools: generate's shards are meant for other
trainers; one killed leaves it to the next writer); a process that opened the
file before that and locks it once it is released finds another file (or none)
at the path and opens again, so no two writers ever hold two different files.
Holding it, the writer removes the temp files
(``.NAME.tmpPID``, see ncalm.atomic_json and ncalm.lm.checkpoint) of writers
that are gone: a kill between writing and renaming leaves them behind,
gigabytes for a paper-size checkpoint.
"""
from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager, suppress
from itertools import takewhile
from pathlib import Path
from typing import Iterator

LOCK = ".ncalm-lock"
_TEMP = re.compile(r"\..+\.tmp(\d+)")
_HELD: set[int] = set()  # this process's lock descriptors


def _close_held() -> None:
    for fd in _HELD:
        with suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held)


class FolderBusy(OSError):
    """Another process is writing the output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete ``directory``'s temp files whose writing process no longer runs; returns them."""
    stale = [p for p in Path(directory).iterdir()
             if (m := _TEMP.fullmatch(p.name)) and p.is_file() and not _alive(int(m[1]))]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _release(fd: int) -> None:
    _HELD.discard(fd)
    os.close(fd)  # releases the lock


def _make(directory: Path) -> list[Path]:
    """``mkdir -p directory``; the folders this call made (another process's are not ours to remove)."""
    missing = list(takewhile(lambda d: not d.exists(), [directory, *directory.parents]))
    made = []
    for d in reversed(missing):
        with suppress(FileExistsError):
            d.mkdir()
            made.append(d)
    return made


@contextmanager
def exclusive(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold ``directory`` (made with its parents if missing) as its only writer; FolderBusy names the holder otherwise.

    The lock file goes with its holder, and a holder that wrote nothing leaves nothing: a refused setting
    must not leave empty folders behind, nor a finished writer a file that is not its output.
    """
    directory = Path(directory)
    path, made, fd, held, tries = directory / LOCK, set(), -1, False, 0
    try:
        while not held:
            if fd >= 0:  # unlinked by a holder leaving, after we opened it: the lock is the file now at the path
                _release(fd)
                fd = -1
            try:
                made.update(_make(directory))  # again: a holder that wrote nothing removes what it made
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # a folder removed by such a holder, after our mkdir
                tries += 1
                if tries > 100:  # not a race: a broken link on the way (mkdir and open both fail on it)
                    raise
                continue
            _HELD.add(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise FolderBusy(f"{directory} is being written by another process (pid {holder}); "
                                 f"wait for it to finish, or write elsewhere") from None
            with suppress(FileNotFoundError):
                held = os.fstat(fd).st_ino == os.stat(path).st_ino
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_stale_temps(directory)
        yield directory
    finally:  # on every way out, a refusal and a failed flock or stat included
        if held:
            with suppress(OSError):
                path.unlink()  # while still held: see the module's docstring
        with suppress(OSError):  # deepest first; stops at the first not empty: the holder wrote there
            for d in sorted(made, key=lambda d: len(d.parts), reverse=True):
                d.rmdir()
        if fd >= 0:
            _release(fd)
