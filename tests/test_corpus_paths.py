"""Local corpus specs: literal paths, home directories, the split rule, byte caps, unreadable files."""
import warnings

import pytest

from ncalm.data import corpus
from ncalm.data.corpus import documents, is_validation, validation_documents
from ncalm.data.tokens import check_corpus


def _lines(tag: str, n: int = 200) -> str:
    return "".join(f"{tag} line {j}\n" for j in range(n))


def test_an_existing_path_with_glob_characters_is_taken_literally(tmp_path):
    (tmp_path / "x[1].txt").write_text(_lines("literal"))
    (tmp_path / "x1.txt").write_text(_lines("globbed"))
    train, val = documents(str(tmp_path / "x[1].txt"), val_percent=10)
    assert train[0] + val[0] == _lines("literal")
    folder = tmp_path / "data[1]"
    folder.mkdir()
    (folder / "a.txt").write_text(_lines("in folder"))
    train, val = documents(str(folder), val_percent=10)
    assert train[0] + val[0] == _lines("in folder")
    # A path that does not exist is still a pattern.
    train, val = documents(str(tmp_path / "x?.txt"), val_percent=10)
    assert train[0] + val[0] == _lines("globbed")


def test_each_comma_separated_part_expands_its_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "a.txt").write_text(_lines("a"))
    (tmp_path / "b.txt").write_text(_lines("b"))
    check_corpus("~/a.txt,~/b.txt")
    train, val = documents("~/a.txt, ~/b.txt", val_percent=10)
    assert sorted(t + v for t, v in zip(train, val)) == [_lines("a"), _lines("b")]


def test_few_expected_validation_files_split_each_files_tail(tmp_path):
    # 40 files at 2% expect 0.8 validation files: a split by file would usually hold out none.
    texts = {f"f{i}.txt": _lines(f"file {i}", 50) for i in range(40)}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    assert sum(is_validation(name, 2.0) for name in texts) < 5
    train, val = documents(str(tmp_path), val_percent=2)
    assert len(train) == len(val) == 40
    assert sorted(t + v for t, v in zip(train, val)) == sorted(texts.values())
    assert validation_documents(str(tmp_path), 2, max_val_bytes=None) == val


def test_enough_validation_files_split_by_file_and_empty_ones_say_what_to_change(tmp_path):
    names = [f"f{i}.txt" for i in range(100)]
    held_out = [n for n in names if is_validation(n, 10.0)]
    assert len(held_out) >= 5
    for n in names:
        (tmp_path / n).write_text("" if n in held_out else _lines(n, 5))
    with pytest.raises(ValueError, match=r"0 validation documents.*--val-percent"):
        documents(str(tmp_path), val_percent=10)
    for n in held_out:
        (tmp_path / n).write_text(_lines(n, 5))
    train, val = documents(str(tmp_path), val_percent=10)
    assert sorted(val) == sorted(_lines(n, 5) for n in held_out) and len(train) == 100 - len(held_out)


def test_max_bytes_caps_one_big_file_in_utf8_bytes(tmp_path):
    text = "".join(f"é line {j}\n" for j in range(20_000))
    (tmp_path / "big.txt").write_text(text)
    _, whole_val = documents(str(tmp_path / "big.txt"), val_percent=5)
    train, val = documents(str(tmp_path / "big.txt"), val_percent=5, max_bytes=1000)
    assert 1000 <= len(train[0].encode()) < 1004 and text.startswith(train[0])
    assert val == whole_val  # validation is each file's tail, whatever the training cap


def test_max_bytes_counts_utf8_bytes_when_splitting_by_file(tmp_path):
    for i in range(30):
        (tmp_path / f"f{i}.txt").write_text("é" * 100)  # 100 characters, 200 bytes
    train, _ = documents(str(tmp_path), val_percent=20, max_bytes=500)
    assert len(train) == 3  # 200 + 200 + 200 bytes reach 500; characters would take 5 files


def test_files_that_are_not_utf8_are_named_not_silently_dropped(tmp_path):
    (tmp_path / "good.txt").write_text(_lines("good"))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1") * 50)
    with pytest.warns(UserWarning, match=r"skipped 1 file.*latin1\.txt.*not UTF-8"):
        train, val = documents(str(tmp_path), val_percent=10)
    assert train[0] + val[0] == _lines("good")
    (tmp_path / "good.txt").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"skipped 1 file.*latin1\.txt.*not UTF-8"):
            documents(str(tmp_path), val_percent=10)


def test_the_stdlib_corpus_skips_its_non_utf8_files_silently(monkeypatch, tmp_path):
    bad = tmp_path / "bad_coding.py"
    bad.write_bytes(b"# -*- coding: latin-1 -*-\nx = '\xe9'\n")
    good = tmp_path / "good.py"
    good.write_text(_lines("good"))
    monkeypatch.setattr(corpus, "stdlib_files", lambda: (("bad_coding.py", bad), ("good.py", good)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train, val = documents("stdlib", val_percent=10)
    assert train[0] + val[0] == _lines("good")


def test_max_val_bytes_counts_utf8_bytes_too(tmp_path):
    for i in range(30):
        (tmp_path / f"f{i}.txt").write_text("é" * 100)
    _, val = documents(str(tmp_path), val_percent=20, max_val_bytes=300)
    assert len(val) == 2  # 200 + 200 bytes reach 300; characters would take 3 files
