"""One writer per output folder: a second `generate`, training stage,
experiment or eval-reasoning into a folder being written is refused by name,
and a writer killed with -9 blocks nobody."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import ncalm
from ncalm.cli import main
from ncalm.locks import FolderBusy, exclusive

GENERATE = ["--seq-len", "63", "--sequences", "8", "--shard-tokens", "1k", "--seed", "5", "--no-progress"]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(ncalm.__file__).resolve().parents[1]), *sys.path])}


def _holder(directory: Path) -> subprocess.Popen:
    """Another process holding ``directory`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom ncalm.locks import exclusive\n"
                             f"with exclusive({str(directory)!r}):\n    print('held', flush=True)\n    time.sleep(600)\n"],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline() == "held\n"
    return proc


@pytest.mark.parametrize("argv", [
    ["generate", *GENERATE],
    ["prepretrain", "--data", "dyck", "--steps", "2", "--warmup", "1", "--seq-len", "32", "--batch-size", "2",
     "--no-progress"],
    ["experiment", "--arms", "scratch", "--no-progress"],
])
def test_a_second_writer_is_refused_by_name(tmp_path, capsys, argv):
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        assert main([argv[0], "--out", str(out), *argv[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{out} is being written by another process (pid {holder.pid})" in err
        assert len(err.splitlines()) == 1
        assert sorted(p.name for p in out.iterdir()) == [".ncalm-lock"]  # the refused one wrote nothing
    finally:
        holder.kill()
        holder.wait()


def test_eval_reasoning_is_refused_too(tmp_path, capsys, tiny_gsm8k):
    checkpoint, data = tiny_gsm8k
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        assert main(["eval-reasoning", "--task", "gsm8k", "--checkpoint", str(checkpoint), "--data", str(data),
                     "--out", str(out), "--shots", "0", "--max-new-tokens", "4", "--no-progress"]) == 2
        assert f"{out} is being written by another process (pid {holder.pid})" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == [".ncalm-lock"]
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_killed_with_9_blocks_nobody(tmp_path):
    out = tmp_path / "nca"
    holder = _holder(out)
    with pytest.raises(FolderBusy):
        with exclusive(out):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert main(["generate", "--out", str(out), *GENERATE]) == 0


def test_a_writer_killed_with_9_blocks_nobody_while_its_forked_workers_live_on(tmp_path):
    # A forked child (a DataLoader or tokenize worker) inherited the lock: the folder stayed locked,
    # naming the dead pid, until the orphaned workers were found and killed.
    out = tmp_path / "out"
    code = ("import os, sys, time\nfrom ncalm.locks import exclusive\n"
            f"with exclusive({str(out)!r}):\n"
            "    if os.fork() == 0:  # the child runs Python code only after its fork hooks\n"
            "        print(os.getpid(), flush=True)\n        time.sleep(600)\n        os._exit(0)\n"
            "    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)
    worker = int(holder.stdout.readline())
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with exclusive(out):  # free the moment its holder died, though the worker still runs
            os.kill(worker, 0)
    finally:
        os.kill(worker, signal.SIGKILL)


def test_two_generate_processes_at_once_one_is_refused(tmp_path):
    out = tmp_path / "nca"
    argv = [sys.executable, "-m", "ncalm", "generate", "--out", str(out), *GENERATE[:3], "4000", *GENERATE[4:]]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    # Refused as busy, or (a loaded machine started it only once the other had finished, or had just left)
    # as a folder that holds shards: never two writers.
    [err] = [err for code, err in results if code == 2]
    assert "is being written by another process" in err or "already holds NCA shards" in err, err


def test_a_holder_that_wrote_nothing_leaves_nothing(tmp_path):
    with exclusive(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    with exclusive(tmp_path / "old"):
        pass
    assert list((tmp_path / "old").iterdir()) == []
    with exclusive(tmp_path / "kept"):
        (tmp_path / "kept" / "f").write_text("x")
    assert (tmp_path / "kept" / "f").exists()


def test_the_lock_file_goes_with_its_holder(tmp_path):
    # .ncalm-lock stayed in every output folder, generate's shard folder (meant for other trainers) included.
    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), *GENERATE]) == 0
    assert ".ncalm-lock" not in {p.name for p in out.iterdir()} and any(out.iterdir())
    with exclusive(out):
        assert (out / ".ncalm-lock").exists()
    assert ".ncalm-lock" not in {p.name for p in out.iterdir()}


@pytest.mark.parametrize("meanwhile", ["left", "another holds"])
def test_a_lock_file_unlinked_after_it_was_opened_is_not_held(tmp_path, monkeypatch, meanwhile):
    # Between our open and our flock, the holder left (unlinking the file we opened), and maybe another
    # writer took a new lock file at the path: locking the old file would make two writers.
    import fcntl

    from ncalm import locks

    out = tmp_path / "out"
    out.mkdir()
    flock, other = fcntl.flock, []

    def flock_after_a_holder_left(fd, op):
        if not other:
            (out / ".ncalm-lock").unlink()
            if meanwhile == "another holds":
                other.append(os.open(out / ".ncalm-lock", os.O_RDWR | os.O_CREAT))
                flock(other[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.pwrite(other[0], b"4242\n", 0)
            else:
                other.append(None)
        return flock(fd, op)

    monkeypatch.setattr(locks.fcntl, "flock", flock_after_a_holder_left)
    if meanwhile == "left":
        with exclusive(out):  # the file now at the path is the one held
            probe = os.open(out / ".ncalm-lock", os.O_RDWR)
            with pytest.raises(BlockingIOError):
                flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.close(probe)
    else:
        with pytest.raises(FolderBusy, match="pid 4242"), exclusive(out):
            pass
        os.close(other[0])


def test_a_holder_that_wrote_nothing_removes_the_parents_it_made_too(tmp_path):
    # mkdir(parents=True) made OUT's parents, and only OUT was removed: `--out new/a/out` left new/a/.
    with exclusive(tmp_path / "new" / "a" / "out"):
        pass
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "old").mkdir()
    with exclusive(tmp_path / "old" / "a" / "out"):
        (tmp_path / "old" / "a" / "f").write_text("x")  # a not empty: a and old stay, out goes
    assert [p.name for p in (tmp_path / "old" / "a").iterdir()] == ["f"]


def test_a_folder_removed_by_another_holder_and_made_again_is_removed(tmp_path, monkeypatch):
    # Whether we made OUT was decided once, before the retries: OUT existed, a holder that wrote nothing
    # removed it before our open, we made it again, and it stayed.
    from ncalm import locks

    out, open_ = tmp_path / "out", os.open
    out.mkdir()

    def open_after_a_holder_left(file, *args):
        if Path(file) == out / ".ncalm-lock" and out.exists() and not made_again:
            made_again.append(out.rmdir())
        return open_(file, *args)

    made_again: list = []
    monkeypatch.setattr(locks.os, "open", open_after_a_holder_left)
    with exclusive(out):
        pass
    assert made_again and not out.exists()


@pytest.mark.parametrize("fails", ["flock", "stat"])
def test_a_failed_flock_or_stat_leaves_the_folder_unlocked(tmp_path, monkeypatch, fails):
    # flock's ENOLCK (NFS) leaked the descriptor and kept it in _HELD; stat's EACCES escaped holding the
    # lock: the folder stayed locked for the life of the process.
    import errno
    import fcntl

    from ncalm import locks

    out, real = tmp_path / "out", {"flock": fcntl.flock, "stat": os.stat}[fails]
    out.mkdir()

    def once(*args, **kwargs):
        if fails == "stat" and Path(args[0]) != out / ".ncalm-lock":
            return real(*args, **kwargs)
        monkeypatch.setattr(locks.fcntl if fails == "flock" else locks.os, fails, real)
        raise OSError(errno.ENOLCK if fails == "flock" else errno.EACCES, "refused")

    before = len(os.listdir("/dev/fd"))
    monkeypatch.setattr(locks.fcntl if fails == "flock" else locks.os, fails, once)
    with pytest.raises(OSError, match="refused"), exclusive(out):
        pass
    assert not locks._HELD and len(os.listdir("/dev/fd")) == before
    with exclusive(out):  # not FolderBusy
        pass


def test_a_broken_link_on_the_way_is_an_error_not_a_hang(tmp_path):
    # mkdir and open both fail on a link to nothing: exclusive retried forever at full CPU.
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for where in (tmp_path / "link", tmp_path / "link" / "out"):
        with pytest.raises(OSError):
            with exclusive(where):
                pass
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".ncalm-lock").symlink_to(tmp_path / "gone" / "lock")
    with pytest.raises(FileNotFoundError):
        with exclusive(tmp_path / "out"):
            pass
