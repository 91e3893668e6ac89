"""Packaging: one version everywhere, `ncalm --version`."""
import re
from pathlib import Path

import pytest

import ncalm
from ncalm.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_pyprojects_and_the_cli_prints_it(capsys):
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert ncalm.__version__ == declared
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"ncalm {declared}"
