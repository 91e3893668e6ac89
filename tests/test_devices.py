"""Device names are checked before any work, with one-line errors naming the device."""
import pytest
import torch

from ncalm.lm.checkpoint import load_model
from ncalm.cli import main
from ncalm.devices import torch_device
from ncalm.settings import SettingError


def test_device_names():
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device(torch.device("cpu")) == torch.device("cpu")
    assert torch_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("foo", "gpu", "cuda:", "cuda:x", "CPU", ""):
        with pytest.raises(SettingError, match=f"^run.device: must be auto, cpu, cuda or cuda:N, got {bad!r}$"):
            torch_device(bad, key="run.device")
    with pytest.raises(SettingError, match=r"^device: 'cuda:99' (needs a CUDA GPU|is not on this machine)"):
        torch_device("cuda:99")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("argv, key", [
    (["prepretrain", "--data", "dyck", "--device", "cuda"], "run.device"),
    (["pretrain", "--set", "run.device=cuda:1"], "run.device"),
    (["experiment", "--dry-run", "--device", "cuda"], "device"),
    (["sweep", "--preset", "sweep-tiny", "--set", "experiment.device='cuda'"], "experiment.device")])
def test_a_cuda_device_on_a_machine_without_cuda_is_named_by_its_setting(argv, key, tmp_path, capsys):
    # Once "device 'cuda:0' requested but CUDA is not available": no setting, and cuda:0 where cuda was given.
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    device = argv[-1].partition("=")[2].strip("'") or argv[-1]
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"ncalm {argv[0]}: error: {key}: {device!r} needs a CUDA GPU: this torch ({torch.__version__}) is built "
        f"without CUDA; use cpu or auto" if torch.version.cuda is None else
        f"ncalm {argv[0]}: error: {key}: {device!r} needs a CUDA GPU: torch sees no CUDA GPU on this machine; "
        f"use cpu or auto")
    assert not (tmp_path / "out").exists()


def test_bad_devices_fail_before_work(tmp_path, capsys):
    with pytest.raises(ValueError, match="^device: must be auto, cpu, cuda or cuda:N, got 'foo'"):
        load_model(tmp_path / "missing.pt", device="foo")  # before the checkpoint is even looked for
    assert main(["prepretrain", "--out", str(tmp_path / "r"), "--data", "dyck", "--device", "foo",
                 "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == "ncalm prepretrain: error: run.device: must be auto, cpu, cuda or cuda:N, got 'foo'"
    assert main(["prepretrain", "--out", str(tmp_path / "r"), "--data", "dyck", "--threads", "-3",
                 "--no-progress"]) == 2
    assert "run.threads: must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
