"""Every invalid setting is a ValueError naming the parameter and what is allowed."""
import json

import numpy as np
import pytest

import ncalm

BAD = [
    (dict(grid=12, patch=5), "not a multiple of patch"),
    (dict(grid=0), r"grid: 0 is out of range"),
    (dict(colors=1), r"colors: 1 is out of range: allowed 2 <= colors <= 256"),
    (dict(colors=300), r"colors: 300"),
    (dict(patch=0), r"patch: 0"),
    (dict(colors=10, patch=4, grid=16), r"exceeds 2\*\*31"),
    (dict(seq_len=0), r"seq_len: 0"),
    (dict(seq_len=-5), r"seq_len: -5"),
    (dict(burn_in=-1), r"burn_in: -1"),
    (dict(dT=0), r"dT: 0"),
    (dict(temperature=-0.1), r"temperature: -0.1 is invalid: must be finite and >= 0"),
    (dict(temperature=float("nan")), r"temperature: nan is invalid: must be finite"),
    (dict(identity_bias=float("inf")), r"identity_bias: inf"),
    (dict(identity_bias=1e39), r"identity_bias: 1e\+39 does not fit the float32"),
    (dict(temperature=1e39), r"temperature: 1e\+39 does not fit the float32"),
    (dict(temperature=1e-40), r"temperature: .* is below 1e-30: logits / temperature would overflow float32"),
    (dict(band=(0.6, 0.5)), r"band: \(0.6, 0.5\) is invalid: need 0 <= lower < upper <= 2"),
    (dict(band=(0.5, 0.5)), r"band: \(0.5, 0.5\)"),
    (dict(band=(-0.1, 1.0)), r"band: \(-0.1, 1\)"),
    (dict(band=(0.5, 2.5)), r"band: \(0.5, 2.5\)"),
    (dict(band=(0.5,)), r"band: must be a pair of numbers"),
    (dict(grid=12.5), r"grid: must be an integer"),
    (dict(max_attempts=0), r"max_attempts: 0"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[m for _, m in BAD])
def test_bad_config_raises_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ncalm.NCAConfig(**kwargs)


def test_the_core_refuses_an_overflowing_temperature_too():
    # Below 1e-30, logits / T overflow float32 and every tie went to colour 0 (wrong dynamics, no error).
    d = ncalm.NCAConfig().core_dict()
    d["temperature"] = 1e-35
    with pytest.raises(ValueError, match="temperature=1e-35 is below 1e-30"):
        ncalm._core.Config(d)  # what every entry point takes: a config the core has checked


def test_numpy_scalars_are_accepted_as_python_numbers():
    c = ncalm.NCAConfig(grid=np.int64(8), colors=np.int32(4), temperature=np.float32(0.5), seq_len=np.uint16(64))
    assert c == ncalm.NCAConfig(grid=8, colors=4, temperature=float(np.float32(0.5)), seq_len=64)
    assert type(c.grid) is int and type(c.temperature) is float
    json.dumps(c.to_dict())  # still JSON
    assert ncalm.NCAConfig(grid=np.float64(8.0)).grid == 8  # a whole number, as TOML's 1e6 for a count
    with pytest.raises(ValueError, match=r"grid: must be an integer"):
        ncalm.NCAConfig(grid=np.float64(8.5))


def test_defaults_are_the_papers():
    c = ncalm.NCAConfig()
    assert (c.grid, c.colors, c.patch, c.burn_in, c.dT, c.temperature, c.seq_len) == (12, 10, 2, 10, 1, 1e-4, 1024)
    assert (c.vocab_size, c.patches_per_frame, c.frame_len, c.frames_per_sequence) == (10002, 36, 38, 27)


def test_dict_round_trip_and_unknown_fields():
    c = ncalm.NCAConfig(band=(0.5, 1.0), temperature=0.0)
    assert ncalm.NCAConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match=r"gird: unknown setting; known: band, burn_in"):
        ncalm.NCAConfig.from_dict({"gird": 12})


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: ncalm.sequence_tokens(ncalm.NCAConfig(), -1, [0]), r"seed=-1 must be an integer in \[0, 2\*\*64\)"),
        (lambda: ncalm.sequence_tokens(ncalm.NCAConfig(), 0, [-3]), r"seq_ids must lie in \[0, "),
        (lambda: ncalm.sequence_tokens(ncalm.NCAConfig(), 0, [2**41]), r"seq_ids must lie in"),
        (lambda: ncalm.sequence_tokens(ncalm.NCAConfig(), 0, [0.5]), r"seq_ids must hold integers"),
        (lambda: ncalm.sequence_tokens(ncalm.NCAConfig(), 0, [0], threads=-2), r"threads=-2"),
        (lambda: ncalm.sequence_tokens(ncalm.NCAConfig(), 0, [0, 1], rule_ids=[0]), r"rule_ids has 1 entries"),
        (lambda: ncalm.sequence_tokens(ncalm.NCAConfig(seq_len=10), 0, [0], out=np.empty((1, 10), np.int32)),
         r"out must have shape"),
        (lambda: ncalm.sequence_tokens(ncalm.NCAConfig(seq_len=10), 0, [0], dtype=np.float32), r"out dtype must be"),
        (lambda: ncalm.filter_rules(ncalm.NCAConfig(), 0, 0, 10), r"needs cfg.band"),
        (lambda: ncalm.rollout(ncalm.NCAConfig(), 0, [0], [0], frames=0), r"frames=0"),
        (lambda: ncalm.NCAGenerator(ncalm.NCAConfig(), 0).batch(0), r"n=0 must be a positive integer"),
        (lambda: ncalm.NCAGenerator(ncalm.NCAConfig(), 0, device="tpu"), r"device='tpu' is not supported"),
        (lambda: ncalm.encode(ncalm.NCAConfig(), np.full((12, 12), 10)), r"grid colours must lie in \[0, 10\)"),
        (lambda: ncalm.complexity(b""), r"empty"),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
