"""Trusted side of ncalm.eval.reasoning.sandbox: start the program in the
sandbox launcher, run the trusted tests here against a proxy of it, and
print the verdict.

Run as `python -I -S trusted_runner.py` (standard library only) by the
evaluator, with a JSON request on stdin: "python" (the launcher's
interpreter), "launch" (the launcher's request, with the program's
"entry_point") and "tests" (code defining check(candidate); None for a plain
program). Prints one JSON line {"passed": bool, "detail": str}. Why the
verdict is out of the program's reach: see ncalm.eval.reasoning.sandbox.
"""
import ctypes
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sandbox_launcher import PR_SET_PDEATHSIG, SIGKILL, TEXT_CHARS, literal  # noqa: E402  (stdlib-only, beside it)

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_launcher.py")
_REPLY_BYTES = 4 << 20  # one reply longer than this is refused, not parsed
_PR_SET_DUMPABLE = 4


class ProgramError(Exception):
    """The program answered something other than a value: what (trusted) and its own text (untrusted)."""

    def __init__(self, what: str, text: str = ""):
        super().__init__(what + (f" (untrusted): {ascii(text)[:TEXT_CHARS]}" if text else ""))


class Program:
    """The sandboxed program: calling it sends plain-data arguments and returns its plain-data answer."""

    def __init__(self, python: str, launch: dict):
        self.proc = subprocess.Popen([python, "-I", LAUNCHER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, close_fds=True)
        self._send(json.dumps(launch))

    def _send(self, line: str):
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the launcher died; reading its answer says so
        reply = self.proc.stdout.readline(_REPLY_BYTES)
        if not reply.endswith("\n"):
            if reply:
                raise ProgramError(f"the program's answer is over {_REPLY_BYTES} bytes")
            raise ProgramError(f"the program exited with code {self.proc.wait()} before answering")
        try:
            reply = literal(reply)
        except Exception:  # any parse failure (also RecursionError, MemoryError) is the program's
            raise ProgramError("the program's answer is not plain data", reply) from None
        if reply == ("ready",):
            return None
        if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "ok":
            return reply[1]
        if isinstance(reply, tuple) and len(reply) == 3 and reply[0] == "raise":
            raise ProgramError("program error", f"{reply[1]}: {reply[2]}" if reply[2] else str(reply[1]))
        raise ProgramError("the program answered out of protocol", str(reply))

    def __call__(self, *args, **kwargs):
        text = repr((args, kwargs))
        try:
            literal(text)
        except Exception:
            raise TypeError("the sandboxed program can only be passed plain data "
                            "(None, bool, numbers, str, bytes, tuple, list, dict, set)") from None
        return self._send(text)


def verdict(request: dict) -> tuple[bool, str]:
    """(passed, detail) of the program against the request's tests."""
    program = None
    try:
        program = Program(request["python"], request["launch"])
        if request["tests"] is not None:
            namespace = {"__name__": "__main__"}
            exec(compile(request["tests"], "<tests>", "exec"), namespace)
            namespace[request["launch"]["entry_point"]] = program  # some tests call it by name (HumanEval/33)
            namespace["check"](program)
        return True, ""
    except Exception as exc:  # AssertionError of the tests, a ProgramError, an error on the program's answers
        detail = str(exc) if isinstance(exc, ProgramError) else f"{type(exc).__name__}: {exc}".rstrip(": ")
        return False, detail.splitlines()[0][:2 * TEXT_CHARS]
    finally:
        if program is not None:
            program.proc.kill()
            program.proc.wait()


def main() -> None:
    libc = ctypes.CDLL(None)
    # Not dumpable: even a program under the same uid can neither trace this process nor open its fds.
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)  # dies with the evaluator; the launcher dies with it
    passed, detail = verdict(json.loads(sys.stdin.read()))
    print(json.dumps({"passed": passed, "detail": detail}), flush=True)


if __name__ == "__main__":
    main()
