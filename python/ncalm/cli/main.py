"""The `ncalm` command: a thin dispatcher over `ncalm.cli.*`.

Each subcommand lives in its own module exposing ``add_arguments(parser)``
and ``run(args) -> int``; its name and one-line help are in COMMANDS. Modules are imported only
when their subcommand runs, so `ncalm generate` never pays for torch-heavy
imports it does not need.
"""
from __future__ import annotations

import argparse
import importlib
import os
import select
import sys
from typing import Any, NoReturn

import ncalm

# (subcommand, module, one-line help). Order is the order shown by --help.
COMMANDS = [
    ("generate", "ncalm.cli.generate", "write filtered NCA token shards (.bin) and a manifest"),
    ("show", "ncalm.cli.show", "render NCA trajectories (PNG strip, GIF) and the complexity histogram"),
    ("tokenize", "ncalm.cli.tokenize", "tokenize a corpus once into train.bin/val.bin + meta.json (GPT-2, bytes, BPE)"),
    ("prepretrain", "ncalm.cli.prepretrain", "first stage: train a transformer on NCA, Dyck or text data"),
    ("pretrain", "ncalm.cli.pretrain", "language stage, optionally from a pre-pre-trained checkpoint (--init)"),
    ("eval", "ncalm.cli.evaluate", "perplexity / bits-per-byte, NCA in-context accuracy, convergence speedup"),
    ("experiment", "ncalm.cli.experiment", "the paper's comparison end to end: all arms, table and plot"),
    ("sweep", "ncalm.cli.sweep", "a grid of experiments over any settings, with seeds: table and plot of effects"),
    ("band", "ncalm.cli.band", "propose an NCA complexity band for a text corpus, and the sweep that tests it"),
    ("eval-reasoning", "ncalm.cli.reasoning", "GSM8K, HumanEval, BIG-Bench Hard (pass@k) and BIG-bench Lite"),
    ("export-hf", "ncalm.cli.export_hf", "write a checkpoint as a Hugging Face Llama folder (transformers)"),
]

EPILOG = """\
typical session:
  ncalm show --out show/                 # look at what the complexity band selects
  ncalm generate --tokens 10M --out nca/ # write NCA shards to disk
  ncalm experiment --preset tiny         # scratch vs NCA vs Dyck vs text, on this CPU
Run `ncalm COMMAND --help` for each command's options."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps descriptions as written; shows each default unless the help states it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """The parser of `ncalm` and of each (sub)command (add_subparsers makes its own kind).

    Options are taken by their whole name only: a prefix was matched to every option it begins, so
    `--data` on pretrain was "ambiguous option: --data could match" its thirty --data.* options. Errors
    are one line that points to --help, not the usage of a command with a hundred options above it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # A subcommand's defaults overwrite its parent's, so args._parser is the deepest (sub)command's parser
        # (that of `ncalm eval bpb`): main reports unknown arguments with it, naming that command.
        self.set_defaults(_parser=self)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="ncalm",
        description="NCA pre-pre-training of language models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ncalm {ncalm.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=HelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _stdout_closed() -> bool:
    """Whether the reader of stdout has gone (`ncalm sweep --plan | head`): a pipe with no reader polls as an
    error. A BrokenPipeError from another pipe (a child process's) is not this, and is reported."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no file behind sys.stdout (captured), no poll on this OS
        return False


def _stdout_to_devnull() -> None:
    """Point a closed stdout at /dev/null: Python's flush at exit then writes nowhere (else it fails: status 120)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    """Run one `ncalm` command; its exit status. A closed stdout ends any command quietly, with the status
    141 of a process that SIGPIPE ended, as Unix tools do (Python's docs, "Note on SIGPIPE")."""
    # Not a `finally`: a closed stdout must not hide another error (a bug's traceback), nor change its status.
    closed = False
    try:
        status = _main(argv)
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        status, closed = 141, True
    except BaseException as exc:
        if _stdout_closed():
            _stdout_to_devnull()
            if isinstance(exc, SystemExit) and not exc.code:  # --help into a closed pipe
                return 141
        raise
    try:
        sys.stdout.flush()  # a closed stdout shows here, not as "Exception ignored" at exit
    except BrokenPipeError:
        status, closed = status or 141, True
    if closed:
        _stdout_to_devnull()
    return status


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only or "")  # imports the named command's module only; none for `ncalm --help`
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Reported by the command's own parser, so the error names `ncalm prepretrain`, not `ncalm`.
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0 if not argv else 2
    try:
        return int(args._run(args) or 0)
    # OSError: a path the user gave that cannot be read or written (missing, a file
    # where a directory is needed, no permission...) is the user's to fix, not a bug.
    except (ValueError, OSError, ImportError) as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            raise  # main ends quietly
        print(f"ncalm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # what no check foresaw: one line, not a traceback
        print(f"ncalm {args.command}: error: out of memory ({exc or 'an allocation failed'}); ask for less "
              f"(smaller sizes, fewer threads)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # its text, where a command gives one, says how to go on
        print(f"ncalm {args.command}: interrupted" + (f"; {exc}" if str(exc) else ""), file=sys.stderr)
        return 130

