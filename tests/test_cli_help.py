"""`ncalm --help` and every `ncalm COMMAND --help` answer fast: without importing torch."""
import subprocess
import sys

from ncalm.cli import COMMANDS

SCRIPT = """
import contextlib, io, sys
from ncalm.cli import COMMANDS, main
for name, _, _ in [("", "", "")] + COMMANDS:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([name, "--help"] if name else ["--help"])
        except SystemExit as e:
            assert e.code == 0, (name, e.code)
    assert ("usage: ncalm " + name) in out.getvalue(), (name, out.getvalue()[:200])
print("torch imported" if "torch" in sys.modules else "torch not imported")
"""


def test_help_of_every_command_loads_without_torch():
    assert len(COMMANDS) >= 7
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "torch not imported"


def test_user_errors_are_one_line_under_python_m_ncalm_cli():
    # Run as a script, cli.py is __main__: its errors must still be the commands' errors.
    done = subprocess.run([sys.executable, "-m", "ncalm.cli", "eval-reasoning", "--checkpoint", "none.pt",
                           "--k", "8", "--n-samples", "4"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "ncalm eval-reasoning: error: --k 8: each k must be in [1, --n-samples=4]"
