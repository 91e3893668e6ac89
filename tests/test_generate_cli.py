"""`ncalm generate`: shards, manifest, overwrite protection, interruption and resume."""
import json
import re

import numpy as np
import pytest

import ncalm
import ncalm.nca.cpu
from ncalm.cli import main

ARGS = ["--seq-len", "63", "--sequences", "40", "--shard-tokens", "1k", "--chunk", "7", "--seed", "5", "--no-progress"]


def read_shards(out):
    manifest = json.loads((out / "manifest.json").read_text())
    data = np.concatenate([np.fromfile(out / s["file"], dtype="<u2") for s in manifest["shards"]])
    return manifest, data.reshape(-1, manifest["sequence_tokens"])


def test_generate_writes_the_stream(tmp_path):
    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), *ARGS]) == 0
    manifest, tokens = read_shards(out)
    cfg = ncalm.NCAConfig.from_dict(manifest["config"])
    assert cfg.seq_len == 63 and cfg.band == (0.5, 1.0) and manifest["complete"]
    assert len(manifest["shards"]) == 3  # 1000 // 64 = 15 sequences per shard
    np.testing.assert_array_equal(tokens, ncalm.sequence_tokens(cfg, 5, np.arange(40)))
    hist = manifest["histogram"]
    assert sum(hist["counts"]) == 40
    edges = np.array(hist["edges"])
    assert all(edges[i] >= 0.5 - 0.025 for i, c in enumerate(hist["counts"]) if c)
    assert manifest["candidates_scored"] >= 40
    assert not list(out.glob(".*.tmp*"))


def test_generate_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), *ARGS]) == 0
    assert main(["generate", "--out", str(out), *ARGS]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["generate", "--out", str(out), *ARGS, "--force", "--seed", "6"]) == 0
    manifest, _ = read_shards(out)
    assert manifest["seed"] == 6


def test_interrupted_run_leaves_no_complete_looking_shard_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "nca"
    real = ncalm.sequence_tokens
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # inside the second shard
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ncalm.nca.cpu, "sequence_tokens", flaky)
    assert main(["generate", "--out", str(out), *ARGS]) == 130
    # What is kept and how to go on (it said only "interrupted").
    assert capsys.readouterr().err == (f"ncalm generate: interrupted; 1 complete shard(s) kept in {out}, "
                                       f"listed in manifest.json; rerun with --resume to continue\n")
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and [s["file"] for s in manifest["shards"]] == ["nca_000000.bin"]
    assert sorted(p.name for p in out.glob("nca_*.bin")) == ["nca_000000.bin"]  # shard 1 only as .tmp
    monkeypatch.setattr(ncalm.nca.cpu, "sequence_tokens", real)
    assert main(["generate", "--out", str(out), *ARGS, "--seed", "6", "--resume"]) == 2  # different plan
    assert "other settings (there -> here): seed: 5 -> 6;" in capsys.readouterr().err
    assert main(["generate", "--out", str(out), *ARGS, "--resume"]) == 0
    manifest, tokens = read_shards(out)
    assert manifest["complete"] and sum(manifest["histogram"]["counts"]) == 40
    np.testing.assert_array_equal(tokens, ncalm.sequence_tokens(ncalm.NCAConfig.from_dict(manifest["config"]), 5, np.arange(40)))


def test_a_run_stopped_in_its_first_shard_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "nca"
    real = ncalm.sequence_tokens

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ncalm.nca.cpu, "sequence_tokens", interrupted)
    assert main(["generate", "--out", str(out), *ARGS, "--force"]) == 130
    assert capsys.readouterr().err.endswith(f"interrupted; 0 complete shard(s) kept in {out}, listed in "
                                            f"manifest.json; rerun with --resume in place of --force to continue\n")
    assert not list(out.glob("*nca_*"))  # the shard's partial temporary file is removed on the way out
    monkeypatch.setattr(ncalm.nca.cpu, "sequence_tokens", real)
    (out / "nca_000000.bin.tmp").write_bytes(b"\0" * 64)  # what versions before the .tmpPID names left
    assert main(["generate", "--out", str(out), *ARGS, "--resume"]) == 0
    manifest, tokens = read_shards(out)
    assert manifest["complete"] and len(tokens) == 40 and not list(out.glob("*.tmp*"))


def test_a_run_that_wrote_no_shard_does_not_block_the_next(tmp_path, monkeypatch, capsys):
    # A run that failed before its first shard left a manifest listing none, and the corrected rerun was refused:
    # "already holds NCA shards; pass --force", with no shard there (and --resume refused: other settings).
    out = tmp_path / "nca"
    real = ncalm.sequence_tokens

    def failing(*a, **k):
        raise ValueError("the generator failed")

    monkeypatch.setattr(ncalm.nca.cpu, "sequence_tokens", failing)
    for run in (1, 2):  # the failed run does not block itself either
        assert main(["generate", "--out", str(out), *ARGS]) == 2
        assert capsys.readouterr().err == "ncalm generate: error: the generator failed\n"
    assert json.loads((out / "manifest.json").read_text())["shards"] == []
    monkeypatch.setattr(ncalm.nca.cpu, "sequence_tokens", real)
    assert main(["generate", "--out", str(out), *ARGS, "--seed", "6"]) == 0
    manifest, tokens = read_shards(out)
    assert manifest["seed"] == 6 and manifest["complete"] and len(tokens) == 40
    # Anything else of value is still refused without --force: a shard, or a manifest that is not such a one.
    for name, text in (("nca_000000.bin", ""), ("manifest.json", "{}"), ("manifest.json", "not JSON")):
        other = tmp_path / f"other-{len(text)}"
        other.mkdir()
        (other / name).write_text(text)
        assert main(["generate", "--out", str(other), *ARGS]) == 2
        assert "already holds NCA shards; pass --force" in capsys.readouterr().err
        assert (other / name).read_text() == text


def test_a_band_without_rules_is_refused_by_its_setting_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "nca"
    nca = ["--grid", "4", "--colors", "2", "--seq-len", "63", "--sequences", "4", "--no-progress"]
    assert main(["generate", "--out", str(out), *nca, "--band", "1.9,2.0"]) == 2
    err = capsys.readouterr().err
    assert err == ("ncalm generate: error: nca.band: no rule of this NCA config scores inside (1.9, 2) (65,536 "
                   "candidates tried): widen the band; `ncalm show` with the same NCA settings plots this config's "
                   "complexity distribution\n")
    assert not out.exists()
    assert main(["generate", "--out", str(out), *nca, "--band", "none"]) == 0


def test_check_band_passes_on_errors_that_are_not_the_bands(monkeypatch):
    # A bad NCALM_ISA (or any other error of the search) must not be reported as an empty band.
    from ncalm.nca.cpu import check_band

    def isa_error(*a):
        raise ValueError("NCALM_ISA='bogus' is not a compiled path")

    monkeypatch.setattr(ncalm.nca.cpu._core, "find_rules", isa_error)
    with pytest.raises(ValueError, match="^NCALM_ISA='bogus'"):
        check_band(ncalm.NCAConfig(band=(0.5, 1.0)), 0)
    check_band(ncalm.NCAConfig(band=None), 0)  # no band, no search


@pytest.mark.parametrize("bad,message", [
    (["--band", "0.9,0.1"], "nca.band: (0.9, 0.1) is invalid"),
    (["--grid", "13"], "nca.grid: 13 is not a multiple of patch=2"),
    (["--colors", "20"], "--colors 20 --patch 2: the uint16 shards need colors**(patch*patch)+2 <= 65536, "
                         "got 160,002 (with --patch 2, at most --colors 15)"),
    (["--chunk", "0"], "chunk: must be >= 1, got 0"),
    (["--threads", "-1"], "threads: must be in [0, 4096], got -1"),
    (["--start", "-1"], "start: must be in [0, 2**40 - 1], got -1"),
    (["--device", "gpu"], "device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    (["--seed", "-1"], "seed: must be in [0, 2**64), got -1"),
    (["--tokens", "10", "--sequences", "2"], "sequences: give tokens or sequences, not both"),
    (["--start", str(2**64 - 1)], "start: must be in [0, 2**40 - 1], got 18446744073709551615"),
    (["--start", str(2**40 - 1)], "exceed the stream's last id, 2**40 - 1 = 1099511627775"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, bad, message):
    assert main(["generate", "--out", str(tmp_path / "x"), "--sequences", "2", *bad]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()  # refused before the output directory is made


def test_counts_in_scientific_notation_are_taken(tmp_path):
    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), *ARGS[:2], "--tokens", "1.28e2", *ARGS[4:]]) == 0
    assert json.loads((out / "manifest.json").read_text())["sequences"] == 2  # 128 tokens: 2 x (63 + 1)


def test_device_cuda_without_a_usable_gpu_says_why(tmp_path, capsys):
    from ncalm import _core

    if getattr(_core, "built_with_cuda", False) and _core.cuda_device_count()[0] > 0:
        pytest.skip("this machine has a GPU: --device cuda is served (tests/test_cuda_backend.py)")
    out = tmp_path / "x"
    assert main(["generate", "--out", str(out), "--sequences", "2", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncalm generate: error: device: 'cuda' needs a CUDA GPU: ncalm was built")
    assert ("without CUDA support" in err or "no CUDA GPU" in err) and err.endswith("; use cpu or auto\n")
    assert not out.exists()  # refused before anything was written


def test_an_out_path_under_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "sub"
    assert main(["generate", "--out", str(out), *ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ncalm generate: error: ") and str(out) in err and len(err.splitlines()) == 1


def test_resume_from_a_manifest_missing_a_key_names_the_manifest_and_key(tmp_path, capsys):
    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), *ARGS]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["seed"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["generate", "--out", str(out), *ARGS, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(out / "manifest.json") in err and "'seed'" in err and len(err.splitlines()) == 1


def test_force_killed_while_deleting_leaves_no_complete_manifest(tmp_path, monkeypatch):
    # The manifest was deleted last: a kill between the unlinks left "complete" beside missing shards.
    from pathlib import Path

    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), *ARGS]) == 0
    real, calls = Path.unlink, []

    def killed_at_the_second(self, missing_ok=False):
        calls.append(self.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", killed_at_the_second)
    assert main(["generate", "--out", str(out), *ARGS, "--force"]) == 130
    assert calls[0] == "manifest.json" and not (out / "manifest.json").exists()


def test_generated_shards_given_as_text_are_refused_saying_what_they_are(tmp_path, monkeypatch, capsys):
    # Once "nanoGPT-layout data needs OUT/train.bin" for bin:OUT, and OUT without bin: read manifest.json as text.
    from ncalm.data.tokens import check_corpus
    from ncalm.settings import SettingError

    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), *ARGS]) == 0
    said = f"{out} holds NCA token shards written by `ncalm generate` (manifest.json), not text: they are for training"
    monkeypatch.chdir(tmp_path)
    for text in (f"bin:{out}", str(out), f"{out}/", f"bin:{out}/nca_000000.bin"):
        assert main(["pretrain", "--text", text, "--out", "run", "--steps", "1", "--warmup", "0", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: data.text.source: {said} outside ncalm" in err, err
        assert not (tmp_path / "run" / "checkpoint.pt").exists()
        with pytest.raises(SettingError, match=f"^source: {re.escape(said)}"):  # as `ncalm experiment` checks its corpora
            check_corpus(text)
