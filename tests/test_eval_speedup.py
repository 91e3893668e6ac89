import json
import math

import numpy as np
import pytest

from ncalm.eval.plots import mean_and_spread, plot_loss_curves
from ncalm.eval.speedup import (AT_START, DIVERGED, MEASURED, NOT_MEASURABLE, NOT_REACHED, read_curve,
                                      speedup, tokens_to_reach)

BASE = [(100, 4.0), (200, 3.0), (300, 2.5), (400, 2.0)]


def test_speedup_known_answer():
    run = [(100, 3.5), (200, 2.5), (300, 1.5), (400, 1.2)]
    s = speedup(BASE, run)
    # run crosses 2.0 halfway between 200 (2.5) and 300 (1.5): 250 tokens.
    assert s.target_loss == 2.0
    assert s.baseline_tokens == 400
    assert s.run_tokens == pytest.approx(250)
    assert s.speedup == pytest.approx(400 / 250) and s.status == MEASURED
    assert s.improvement_pct == pytest.approx(40.0)


def test_speedup_of_a_curve_over_itself_is_one():
    s = speedup(BASE, BASE)
    assert s.speedup == 1.0 and s.improvement_pct == 0.0


def test_run_that_never_reaches_the_target():
    run = [(100, 4.0), (200, 3.0), (300, 2.5), (400, 2.1)]
    s = speedup(BASE, run)
    assert s.run_tokens is None and s.speedup is None and s.status == NOT_REACHED
    assert s.improvement_pct == pytest.approx(-5.0)


def test_first_crossing_of_a_noisy_baseline():
    base = [(100, 4.0), (200, 1.9), (300, 2.0)]
    # 4.0 -> 1.9 crosses 2.0 at 100 + 100 * 2.0 / 2.1
    assert speedup(base, base).baseline_tokens == pytest.approx(100 + 100 * 2.0 / 2.1)


def test_target_reached_at_the_first_point():
    assert tokens_to_reach([(50, 1.0), (100, 0.5)], 2.0) == 50


def test_run_already_at_the_target_at_its_first_evaluation():
    # Trainer curves start at 0 tokens: a first stage can put the step-0 loss under scratch's final one.
    base = [(0, 5.0), (100, 4.0), (200, 3.9)]
    s = speedup(base, [(0, 3.9), (100, 3.5)])
    assert s.status == AT_START and s.run_tokens == 0 and s.speedup == math.inf
    assert s.improvement_pct == pytest.approx((3.9 - 3.5) / 3.9 * 100)
    # A first evaluation later than 0 tokens bounds the speedup from below.
    s = speedup(base, [(50, 3.0), (100, 2.5)])
    assert s.status == AT_START and s.speedup == pytest.approx(200 / 50)


def test_speedup_needs_a_crossing_to_time():
    # eval_every=0: one evaluation per run, at the end; nothing says when either got there.
    s = speedup([(300, 2.0)], [(300, 1.9)])
    assert s.status == NOT_MEASURABLE and s.speedup is None
    assert s.improvement_pct == pytest.approx(5.0)
    assert speedup(BASE, [(400, 1.0)]).status == NOT_MEASURABLE
    # A baseline no lower at the end than at its first evaluation never crosses its own target.
    s = speedup([(0, 3.0), (100, 3.5), (200, 3.0)], [(0, 3.0), (100, 2.0)])
    assert s.status == NOT_MEASURABLE and s.speedup is None


def test_a_diverged_curve_is_a_status_not_an_error():
    nan = float("nan")
    s = speedup(BASE, [(100, 3.0), (200, 2.0), (300, nan)])  # reached the target, then NaN
    assert s.status == DIVERGED and s.speedup is None and s.run_tokens is None
    assert s.baseline_tokens == 400 and s.improvement_pct is None
    assert s.to_dict()["run_final"] is None and "diverged" in s.describe()
    s = speedup(BASE, [(100, 3.0), (200, math.inf), (400, 1.0)])  # blew up, came back: still not a clean curve
    assert s.status == DIVERGED and s.improvement_pct == pytest.approx(50.0)
    s = speedup([(100, 4.0), (200, nan)], BASE)
    assert s.status == DIVERGED and s.to_dict()["baseline_tokens"] is None and s.improvement_pct is None
    with pytest.raises(ValueError, match="not finite"):  # token counts must still be numbers
        speedup(BASE, [(nan, 3.0), (200, 2.0)])


def test_bad_curves_are_rejected():
    with pytest.raises(ValueError, match="increase strictly"):
        speedup(BASE, [(100, 3.0), (100, 2.0)])
    with pytest.raises(ValueError, match="empty"):
        speedup([], BASE)
    with pytest.raises(ValueError, match="tokens=-100"):
        speedup([(-100, 3.0), (100, 2.0)], BASE)


def test_read_curve_skips_lines_without_the_keys(tmp_path):
    p = tmp_path / "m.jsonl"
    lines = [{"step": 1, "tokens": 10, "loss": 5.0}, {"step": 2, "tokens": 20, "val_loss": 4.0},
             {"step": 3, "tokens": 30, "val_loss": 3.0}]
    p.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert read_curve(p) == [(20.0, 4.0), (30.0, 3.0)]
    with pytest.raises(ValueError, match="no line has both"):
        read_curve(p, y="nope")


def test_read_curve_drops_the_torn_last_line_of_a_killed_run(tmp_path):
    p = tmp_path / "metrics.jsonl"
    whole = "\n".join(json.dumps({"tokens": 10 * i, "val_loss": 5.0 - i}) for i in (1, 2)) + "\n"
    p.write_text(whole + '{"tokens": 30, "val_lo')
    assert read_curve(tmp_path) == [(10.0, 4.0), (20.0, 3.0)]
    p.write_text('{"tokens": 5, "val_lo\n' + whole)  # not the last line: a damaged file
    with pytest.raises(ValueError, match=r"metrics.jsonl:1: not valid JSON"):
        read_curve(p)


def test_mean_and_spread_over_seeds():
    a = [(0, 1.0), (10, 3.0)]
    b = [(0, 3.0), (5, 2.0), (10, 5.0)]
    x, mean, lo, hi = mean_and_spread([a, b])
    np.testing.assert_allclose(x, [0, 10])
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(lo, [1.0, 3.0])
    np.testing.assert_allclose(hi, [3.0, 5.0])


def test_plot_writes_a_png(tmp_path):
    from PIL import Image

    out = plot_loss_curves({"scratch": [BASE, BASE[:3] + [(400, 2.2)]], "nca": [BASE]}, tmp_path / "c.png")
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert (img.std(axis=(0, 1)) > 0).all()  # not a blank canvas


def _figure_of(monkeypatch, arms: dict):
    """The figure plot_loss_curves draws, before it is written."""
    import ncalm.eval.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or path)
    plot_loss_curves(arms, "unused.png")
    return drawn[0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_plot_of_a_diverged_run_keeps_finite_axis_limits(monkeypatch, tmp_path, bad):
    diverged = [(100, 4.0), (200, bad), (300, bad), (400, bad)]  # first in the zoom: min/max gave NaN or inf
    arms = {"nca": [diverged], "scratch": [BASE, BASE[:3] + [(400, 2.2)]]}
    zoom = _figure_of(monkeypatch, arms).axes[1]  # was "Axis limits cannot be NaN or Inf"
    low, high = zoom.get_ylim()
    assert low == pytest.approx(2.0 - 0.05 * 1.0) and high == pytest.approx(3.0 + 0.05 * 1.0)  # scratch's 3.0..2.0
    monkeypatch.undo()
    assert plot_loss_curves(arms, tmp_path / "c.png").exists()


@pytest.mark.parametrize("n_arms", [11, 40])
def test_every_arm_has_its_own_colour_and_line_style(monkeypatch, n_arms):
    fig = _figure_of(monkeypatch, {f"arm{i}": [BASE] for i in range(n_arms)})  # --ablations: 11 arms
    from matplotlib.colors import to_rgba

    styles = {(to_rgba(line.get_color()), line.get_linestyle()) for line in fig.axes[0].get_lines()}
    assert len(styles) == n_arms  # arm10 had scratch's C0 and solid line


def test_eval_speedup_command_reports_each_status(tmp_path, capsys):
    from ncalm.cli import main

    def curve(name, points):
        (tmp_path / name).write_text("".join(json.dumps({"tokens": t, "val_loss": v}) + "\n" for t, v in points))
        return str(tmp_path / name)

    base = curve("base.jsonl", [(0, 4.0), (100, 3.0), (200, 2.0)])
    runs = [curve("fast.jsonl", [(0, 4.0), (100, 2.0), (200, 1.5)]),
            curve("start.jsonl", [(0, 1.9), (100, 1.8)]),           # below the target before training
            curve("slow.jsonl", [(0, 4.0), (200, 3.5)]),
            curve("one.jsonl", [(200, 2.5)]),
            curve("nan.jsonl", [(0, 4.0), (100, float("nan"))])]  # the trainer logs NaN as NaN
    out = tmp_path / "s.json"
    assert main(["eval", "speedup", "--baseline", base, "--run", *runs, "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "speedup 2.00x (100 vs 200 tokens)" in lines[0]
    assert lines[0].endswith("final val_loss 1.5000 vs 2.0000 (change -25.00%, negative = better)")
    assert lines[2].endswith("final val_loss 3.5000 vs 2.0000 (change +75.00%, negative = better)")  # was "(-75.00%)"
    assert "speedup unbounded: before any training" in lines[1]
    assert "never reaches" in lines[2] and "speedup n/a" in lines[3]
    assert "diverged" in lines[4] and lines[4].endswith("final val_loss nan vs 2.0000")

    def strict(constant):
        raise AssertionError(f"{constant} in JSON")

    saved = json.loads(out.read_text(), parse_constant=strict)["runs"]  # strict JSON: no Infinity, no NaN
    assert [saved[r]["status"] for r in runs] == [MEASURED, AT_START, NOT_REACHED, NOT_MEASURABLE, DIVERGED]
    assert saved[runs[1]]["speedup"] is None
