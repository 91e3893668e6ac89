"""`ncalm generate --resume` certifies only what verifies: a listed shard cut
short, altered or missing is written again; a manifest whose shard list or
counts were edited is refused, naming it."""
import json

import numpy as np
import pytest

import ncalm
import ncalm.nca.cpu
from ncalm.cli import main

ARGS = ["--seq-len", "63", "--sequences", "40", "--shard-tokens", "1k", "--chunk", "7", "--seed", "5", "--no-progress"]


@pytest.fixture
def interrupted(tmp_path, monkeypatch):
    """An output stopped inside its third shard: two shards listed, the manifest not complete."""
    out = tmp_path / "nca"
    real, calls = ncalm.sequence_tokens, {"n": 0}

    def stop_in_third_shard(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:  # 15 sequences a shard, 7 a chunk: the third shard's first chunk
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ncalm.nca.cpu, "sequence_tokens", stop_in_third_shard)
    assert main(["generate", "--out", str(out), *ARGS]) == 130
    monkeypatch.setattr(ncalm.nca.cpu, "sequence_tokens", real)
    assert len(json.loads((out / "manifest.json").read_text())["shards"]) == 2
    return out


def _stream_on_disk(out) -> np.ndarray:
    manifest = json.loads((out / "manifest.json").read_text())
    data = np.concatenate([np.fromfile(out / s["file"], dtype="<u2") for s in manifest["shards"]])
    assert manifest["complete"] and sum(manifest["histogram"]["counts"]) == 40
    return data.reshape(-1, 64)


def _expected(out) -> np.ndarray:
    cfg = ncalm.NCAConfig.from_dict(json.loads((out / "manifest.json").read_text())["config"])
    return ncalm.sequence_tokens(cfg, 5, np.arange(40))


def _cut(path):
    path.write_bytes(path.read_bytes()[:-128])


def _flip_last(path):
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(data)


def _flip_first(path):
    data = bytearray(path.read_bytes())
    data[1] ^= 1
    path.write_bytes(data)


@pytest.mark.parametrize("damage", [_cut, _flip_last, _flip_first, lambda p: p.unlink()])
def test_a_damaged_listed_shard_is_written_again(interrupted, capsys, damage):
    damage(interrupted / "nca_000001.bin")
    capsys.readouterr()
    assert main(["generate", "--out", str(interrupted), *ARGS, "--resume"]) == 0
    assert f"{interrupted / 'nca_000001.bin'} is not the stream it lists" in capsys.readouterr().err
    np.testing.assert_array_equal(_stream_on_disk(interrupted), _expected(interrupted))


def test_a_complete_output_with_a_truncated_shard_is_not_certified(tmp_path, capsys):
    out = tmp_path / "nca"
    assert main(["generate", "--out", str(out), *ARGS]) == 0
    _cut(out / "nca_000002.bin")
    assert main(["generate", "--out", str(out), *ARGS, "--resume"]) == 0
    assert "nca_000002.bin is not the stream it lists" in capsys.readouterr().err
    np.testing.assert_array_equal(_stream_on_disk(out), _expected(out))


@pytest.mark.parametrize("chunk, shard_tokens", [("1", "1k"), ("7", "64")])  # one-sequence chunks, shards
def test_verification_works_with_single_sequence_chunks_and_shards(tmp_path, chunk, shard_tokens):
    out = tmp_path / "nca"
    argv = ["generate", "--out", str(out), "--seq-len", "63", "--sequences", "5", "--chunk", chunk,
            "--shard-tokens", shard_tokens, "--seed", "5", "--no-progress"]
    assert main(argv) == 0
    _flip_last(out / "nca_000000.bin")
    assert main([*argv, "--resume"]) == 0
    cfg = ncalm.NCAConfig.from_dict(json.loads((out / "manifest.json").read_text())["config"])
    files = sorted(out.glob("nca_*.bin"))
    np.testing.assert_array_equal(np.concatenate([np.fromfile(f, "<u2") for f in files]).reshape(-1, 64),
                                  ncalm.sequence_tokens(cfg, 5, np.arange(5)))


def _set(key_path, value):
    def edit(manifest):
        target = manifest
        for key in key_path[:-1]:
            target = target[key]
        target[key_path[-1]] = value
    return edit


@pytest.mark.parametrize("edit", [
    _set(["shards"], "oops"),
    _set(["shards", 0, "sequences"], 30),  # inflated: the file holds 15
    _set(["shards", 1, "first_sequence"], 0),
    _set(["shards", 1, "file"], "nca_000000.bin"),
    lambda m: m["shards"].append(dict(m["shards"][1], file="nca_000002.bin", first_sequence=30)),
    _set(["histogram"], {"counts": "oops"}),
    _set(["histogram", "counts", 0], -4),
    _set(["candidates_scored"], "many"),
])
def test_an_edited_shard_list_or_histogram_is_refused_naming_the_manifest(interrupted, capsys, edit):
    manifest = json.loads((interrupted / "manifest.json").read_text())
    edit(manifest)
    (interrupted / "manifest.json").write_text(json.dumps(manifest))
    before = sorted(p.name for p in interrupted.iterdir())
    capsys.readouterr()
    assert main(["generate", "--out", str(interrupted), *ARGS, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(interrupted / "manifest.json") in err and "--force" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in interrupted.iterdir()) == before  # nothing written


@pytest.mark.parametrize("text", ['{"config": ', "[1, 2]", '{"shards": []}'])
def test_a_torn_or_foreign_manifest_is_a_one_line_error_naming_it(interrupted, capsys, text):
    (interrupted / "manifest.json").write_text(text)
    capsys.readouterr()
    assert main(["generate", "--out", str(interrupted), *ARGS, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(interrupted / "manifest.json") in err and len(err.splitlines()) == 1
