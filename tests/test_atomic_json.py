import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ncalm
from ncalm.atomic_json import replacing, write_json


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"step": 1})
    assert write_json(path, {"step": 2, "done": True}) == path
    assert json.loads(path.read_text()) == {"step": 2, "done": True}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    write_json(path, [1, 2], indent=None)
    assert path.read_text() == "[1, 2]\n"


def test_text_is_written_as_utf8_whatever_the_locale(tmp_path):
    # tokenizer.json holds non-ASCII tokens; under an ASCII locale a plain open() would refuse (or mangle) them.
    target = tmp_path / "t.json"
    code = f"from ncalm.atomic_json import write_text; write_text({str(target)!r}, '\\u00e9\\u4e2d')"
    env = {**os.environ, "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LC_ALL": "C",
           "PYTHONPATH": str(Path(ncalm.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    assert target.read_bytes() == "\u00e9\u4e2d".encode("utf-8")


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"old": 1})
    with pytest.raises(RuntimeError):
        with replacing(path) as f:
            f.write("half")
            raise RuntimeError("the writer failed mid-way")
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError):  # e.g. eval bpb --json DIR, after the whole evaluation
        write_json(tmp_path / "folder", {"new": 1})
    assert json.loads(path.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "result.json"]
