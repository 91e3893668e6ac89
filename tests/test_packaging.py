"""Packaging: one version everywhere, `ncalm --version`, type stubs of the compiled module."""
import ast
import os
import re
import subprocess
import sys
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


CUDA_ONLY = {"cuda_device_count", "cuda_unsupported", "cuda_pointer_device", "cuda_generate", "CudaFilter"}


def _parameters(fn: ast.FunctionDef) -> list[tuple[str, str | None]]:
    """(name, default source) of each parameter, types left out: stubs spell types their own way."""
    args = fn.args.args
    defaults = [None] * (len(args) - len(fn.args.defaults)) + [ast.unparse(d) for d in fn.args.defaults]
    return [(a.arg, d) for a, d in zip(args, defaults) if a.arg != "self"]


def _compiled_parameters(obj) -> list[tuple[str, str | None]]:
    # pybind11 writes the signature as the docstring's first line: "name(a: T, b: T = 0) -> R".
    line = obj.__doc__.splitlines()[0]
    return _parameters(ast.parse(f"def {line}: ...").body[0])


def test_the_core_stub_names_every_function_with_its_parameters():
    from ncalm import _core

    stub = {node.name: node for node in ast.parse((Path(ncalm.__file__).parent / "_core.pyi").read_text()).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    stub["built_with_cuda"] = stub["built_native"] = None
    expected = set(stub) if _core.built_with_cuda else set(stub) - CUDA_ONLY
    assert {n for n in dir(_core) if not n.startswith("_")} == expected
    for name in expected - {"built_with_cuda", "built_native"}:
        if isinstance(stub[name], ast.ClassDef):
            methods = {m.name: m for m in stub[name].body if isinstance(m, ast.FunctionDef)}
            for method, node in methods.items():
                compiled = getattr(getattr(_core, name), method)
                if any(ast.unparse(d) == "property" for d in node.decorator_list):
                    assert isinstance(compiled, property), method
                    continue
                assert _compiled_parameters(compiled) == _parameters(node), method
        else:
            assert _compiled_parameters(getattr(_core, name)) == _parameters(stub[name]), name
    assert (Path(ncalm.__file__).parent / "py.typed").is_file()


def test_mypy_reads_the_core_stub(tmp_path):
    pytest.importorskip("mypy")
    (tmp_path / "use.py").write_text("from ncalm import _core\n\n"
                                     "threads: int = _core.default_threads()\n"
                                     "size: str = _core.gzip_size(b'abc')\n"
                                     "_core.gzip_size(b'abc', level=9)\n")
    package_root = Path(ncalm.__file__).resolve().parents[1]
    env = dict(os.environ)
    if package_root.name != "site-packages":  # a dev build; installed, mypy finds it through py.typed
        env["MYPYPATH"] = str(package_root)
    # Imports are not followed into ncalm's own modules (torch would take a minute); a stub always is.
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=skip",
                           "--no-error-summary", "use.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    errors = [line for line in done.stdout.splitlines() if ": error: " in line]
    assert len(errors) == 2, done.stdout + done.stderr
    assert errors[0].startswith("use.py:4: error: Incompatible types in assignment (expression has type \"int\"")
    assert errors[1].startswith("use.py:5: error: Unexpected keyword argument \"level\"")
