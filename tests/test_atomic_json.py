import json

from ncalm.atomic_json import write_json


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"step": 1})
    assert write_json(path, {"step": 2, "done": True}) == path
    assert json.loads(path.read_text()) == {"step": 2, "done": True}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    write_json(path, [1, 2], indent=None)
    assert path.read_text() == "[1, 2]\n"
