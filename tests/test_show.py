import numpy as np
import pytest
from PIL import Image

from ncalm import NCAConfig, find_rules, rollout, score_rules
from ncalm.cli import main
from ncalm.nca.pictures import palette

RULES, FRAMES, SCALE, GAP, CANDIDATES = 3, 5, 4, 2, 300
CFG = NCAConfig(grid=8, colors=6, band=(0.3, 1.0))


def test_show_draws_the_simulated_grids(tmp_path, capsys):
    rc = main(["show", "--grid", "8", "--colors", "6", "--band", "0.3,1.0", "--seed", "5",
               "--rules", str(RULES), "--frames", str(FRAMES), "--candidates", str(CANDIDATES),
               "--scale", str(SCALE), "--out", str(tmp_path)])
    assert rc == 0
    ids = np.arange(RULES, dtype=np.uint64)
    grids = rollout(CFG, 5, find_rules(CFG, 5, ids)[0], ids, FRAMES)
    pal = palette(CFG.colors)
    cell = CFG.grid * SCALE + GAP

    strip = np.asarray(Image.open(tmp_path / "trajectories.png").convert("RGB"))
    assert strip.shape == (RULES * cell - GAP, FRAMES * cell - GAP, 3)
    for r in range(RULES):
        for t in range(FRAMES):
            block = strip[r * cell:r * cell + CFG.grid * SCALE, t * cell:t * cell + CFG.grid * SCALE]
            np.testing.assert_array_equal(block[::SCALE, ::SCALE], pal[grids[r, t]])

    gif = Image.open(tmp_path / "trajectories.gif")
    assert gif.n_frames == FRAMES
    gif.seek(FRAMES - 1)
    last = np.asarray(gif.convert("RGB"))
    np.testing.assert_array_equal(last[:CFG.grid * SCALE:SCALE, :CFG.grid * SCALE:SCALE], pal[grids[0, -1]])

    ratios = score_rules(CFG, 5, np.arange(CANDIDATES, dtype=np.uint64))
    share = ((ratios > 0.3) & (ratios < 1.0)).mean()
    assert f"{share:.1%} of candidates" in capsys.readouterr().out
    for name in ("complexity.png", "rejected.png"):
        assert Image.open(tmp_path / name).size[0] > 100

    # Again into the same --out without a band: the old rejected.png would pass for this run's.
    assert main(["show", "--grid", "8", "--colors", "6", "--band", "none", "--rules", "1", "--frames", "2",
                 "--candidates", "20", "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "rejected.png").exists()
    assert f"removed {tmp_path / 'rejected.png'} of an earlier run" in capsys.readouterr().out


def test_show_rejects_bad_options(tmp_path, capsys):
    assert main(["show", "--rules", "0", "--out", str(tmp_path)]) == 2
    assert "rules: must be >= 1, got 0" in capsys.readouterr().err
    assert main(["show", "--grid", "7", "--out", str(tmp_path)]) == 2


def test_an_empty_band_still_writes_the_histogram(tmp_path, capsys):
    # The histogram is the plot that explains why the band selects nothing.
    assert main(["show", "--grid", "4", "--colors", "2", "--band", "0,0.01", "--candidates", "50", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncalm show: error: --band 0,0.01: no rule inside band") and err.count("\n") == 1
    assert "complexity.png" in err and Image.open(tmp_path / "complexity.png").size[0] > 100
    assert not (tmp_path / "trajectories.png").exists()


def test_show_has_no_seq_len(tmp_path, capsys):
    # Pictures are --frames long; a --seq-len that changed nothing would mislead.
    with pytest.raises(SystemExit) as exit_:
        main(["show", "--seq-len", "64", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "unrecognized arguments: --seq-len" in capsys.readouterr().err


def test_256_colours_fit_the_gif_palette(tmp_path):
    # 256 states leave no palette entry for the separator (it was index 256, an invalid palette).
    assert main(["show", "--grid", "6", "--patch", "1", "--colors", "256", "--band", "none", "--rules", "2",
                 "--frames", "3", "--candidates", "20", "--out", str(tmp_path)]) == 0
    gif = Image.open(tmp_path / "trajectories.gif")
    assert gif.n_frames == 3 and gif.mode == "P"


@pytest.mark.parametrize("argv, named", [
    (["--scale", "100000"], "--rules 1 x --frames 1 of --grid 4 at --scale 100,000"),
    (["--candidates", str(2**42)], f"--candidates {2**42:,}"),
    (["--grid", "4096", "--patch", "1", "--nca.score_frames", "65536"], "--grid 4096, --patch 1, --nca.score_frames 65536 (per thread)"),
])
def test_show_refuses_what_cannot_fit_before_any_work(tmp_path, capsys, argv, named):
    # Sizes far past any machine's memory: refused up front in one line, not a MemoryError (or the OOM killer).
    base = ["show", "--grid", "4", "--colors", "2", "--band", "none", "--rules", "1", "--frames", "1",
            "--candidates", "1", "--out", str(tmp_path)]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ncalm show: error: {named}") and "GiB of memory, more than the" in err
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_strip_bytes_bounds_what_save_strip_allocates(tmp_path):
    import tracemalloc

    from ncalm.nca.pictures import save_strip, strip_bytes

    grids = np.random.default_rng(0).integers(0, 6, (4, 10, 16, 16)).astype(np.uint8)
    tracemalloc.start()  # numpy's arrays are traced; PIL's own copy (4 B a pixel) is not, and strip_bytes counts it
    save_strip(grids, tmp_path / "s.png", 6, 8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak + 4 * 4 * 10 * (16 * 8 + 2) ** 2 <= strip_bytes(4, 10, 16, 8)
