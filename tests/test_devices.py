"""Device names are checked before any work, with one-line errors naming the device."""
import pytest
import torch

from ncalm.lm.checkpoint import load_model
from ncalm.cli import main
from ncalm.devices import torch_device


def test_device_names():
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device(torch.device("cpu")) == torch.device("cpu")
    assert torch_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("foo", "gpu", "cuda:", "cuda:x", "CPU", ""):
        with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
            torch_device(bad)
    with pytest.raises(ValueError, match=r"device 'cuda:99'.*(not available|CUDA device\(s\))"):
        torch_device("cuda:99")


def test_bad_devices_fail_before_work(tmp_path, capsys):
    with pytest.raises(ValueError, match="device 'foo'"):
        load_model(tmp_path / "missing.pt", device="foo")  # before the checkpoint is even looked for
    assert main(["prepretrain", "--out", str(tmp_path / "r"), "--data", "dyck", "--device", "foo",
                 "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == "ncalm prepretrain: error: run.device: must be auto, cpu, cuda or cuda:N, got 'foo'"
    assert main(["prepretrain", "--out", str(tmp_path / "r"), "--data", "dyck", "--threads", "-3",
                 "--no-progress"]) == 2
    assert "run.threads: must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
