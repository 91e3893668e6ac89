"""`ncalm band`: a corpus's gzip complexity on NCA-score-sized windows, a proposed band and its sweep."""
import gzip
import json
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomllib is 3.11+
    import tomli as tomllib

import numpy as np
import pytest

from ncalm.cli import main
from ncalm.eval.band import corpus_scores, propose_band, window_tokens
from ncalm.experiment.sweep import SweepConfig, points
from ncalm.nca.config import NCAConfig


def test_corpus_scores_are_the_nca_score_of_byte_tokens():
    docs = ["def f(x):\n    return x + 1\n" * 40, "The rule of the grid. " * 50]
    window = window_tokens(NCAConfig(colors=6))
    assert window == 10 * 36
    scores = corpus_scores(docs, window, 20, seed=3)
    data = np.frombuffer("\n".join(docs).encode(), dtype=np.uint8)
    starts = np.random.default_rng(3).integers(0, len(data) - window + 1, 20)
    slow = [len(gzip.compress(data[s:s + window].astype("<i4").tobytes(), 9)) / (4 * window) for s in starts]
    assert scores == pytest.approx(slow, abs=1e-12)
    assert propose_band(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == (0.2, 0.4)
    with pytest.raises(ValueError, match="fewer than one window"):
        corpus_scores(["short"], window, 5)


@pytest.mark.parametrize("corpus", ["local", "stdlib"])
def test_band_command_writes_a_proposal_and_a_runnable_sweep(tmp_path, corpus):
    args = ["band", "--out", str(tmp_path / "out"), "--windows", "60", "--rules", "60", "--seeds", "0", "1"]
    if corpus == "local":
        text = tmp_path / "notes.txt"
        text.write_text("".join(f"entry {i}: the cell keeps its colour when {i % 7} neighbours agree\n"
                                for i in range(300)))
        args += ["--text", str(text), "--set", "language.data.text.val_percent=10", "--set", "name=notes"]
    assert main(args) == 0
    report = json.loads((tmp_path / "out" / "band.json").read_text())
    lo, hi = report["proposed_band"]
    q = report["corpus_quantiles"]
    assert lo <= q["25"] < q["75"] <= hi and hi - lo < 0.2
    assert (tmp_path / "out" / "band.png").stat().st_size > 0
    sweep = SweepConfig.from_dict(tomllib.loads((tmp_path / "out" / "sweep.toml").read_text()))
    # Against the experiment's own band (the tiny preset's 4 colours: the paper band's share, (0.22, 1.0)),
    # which holds NCA rules; the paper's (0.5, 1.0) holds none at 4 colours.
    assert sweep.axes == {"bands": [[[lo, hi]], [[0.22, 1.0]]]} and sweep.seeds == [0, 1]
    assert report["nca_share_inside"]["experiment"] > 0
    pts = points(sweep)
    assert [p.config.arms for p in pts] == [["scratch"], ["nca"], ["nca"]]  # scratch shared: same language stage
    source = pts[1].config.language.data.text.source
    assert source == (str(tmp_path / "notes.txt") if corpus == "local" else "stdlib")


def test_an_unset_optional_setting_is_written_as_valid_toml(tmp_path):
    from ncalm.settings import differences

    text = tmp_path / "notes.txt"
    text.write_text("".join(f"entry {i}: the cell keeps its colour when {i % 7} neighbours agree\n"
                            for i in range(300)))
    sweeps = {}
    for name, extra in (("plain", []), ("unset", ["--set", "threads=none"])):  # the tiny preset has threads 1
        assert main(["band", "--out", str(tmp_path / name), "--windows", "60", "--rules", "60", "--text", str(text),
                     *extra]) == 0
        written = (tmp_path / name / "sweep.toml").read_text()
        sweeps[name] = [p.config.to_dict() for p in points(SweepConfig.from_dict(tomllib.loads(written)))]  # was
        # "tomllib.TOMLDecodeError: Invalid value" at threads = null
    assert 'threads = "none"' in written
    for plain, unset in zip(sweeps["plain"], sweeps["unset"]):
        assert differences(plain, unset) == ["threads: 1 -> null"]


def test_token_files_are_refused_before_anything_is_written(tmp_path, capsys):
    # A `ncalm tokenize` folder was read as text: its meta.json and tokenizer.json were scored.
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    for name in ("train.bin", "val.bin"):
        (tokens / name).write_bytes(bytes(8))
    for spec in (str(tokens), f"bin:{tokens}"):
        assert main(["band", "--text", spec, "--out", str(tmp_path / "out")]) == 2
        assert "token files hold no text to score as bytes" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_title_fits_the_image_and_the_suggested_sweep_is_the_runs_own(tmp_path, monkeypatch, capsys):
    # A long corpus path ran off band.png, and every band run suggested `--out runs/sweep-band`: a second
    # corpus's sweep would have resumed (or been refused by) the first's.
    from ncalm.eval import band

    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6)
    deep.mkdir(parents=True)
    text = deep / "notes.txt"
    text.write_text("".join(f"entry {i}: the cell keeps its colour when {i % 7} neighbours agree\n"
                            for i in range(300)))
    titles, save_figure = [], band.save_figure

    def save(fig, path):
        fig.canvas.draw()
        title = fig.axes[0].title
        extent = title.get_window_extent(fig.canvas.get_renderer())
        titles.append((title.get_text(), extent.x0 >= 0 and extent.x1 <= fig.bbox.x1))
        return save_figure(fig, path)

    monkeypatch.setattr(band, "save_figure", save)
    out = tmp_path / "band-notes"
    assert main(["band", "--text", str(text), "--out", str(out), "--windows", "60", "--rules", "60"]) == 0
    [(title, fits)] = titles
    assert fits and title.startswith("a-rather-long-folder-name/notes.txt\n"), title
    printed = capsys.readouterr().out
    assert str(text) in printed and json.loads((out / "band.json").read_text())["corpus"] == str(text)
    assert printed.strip().endswith(f"ncalm sweep --config {out / 'sweep.toml'} --out {out / 'sweep'}")
