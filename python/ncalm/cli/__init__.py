"""The `ncalm` command line: the top layer. Nothing else in the package imports it."""
from ncalm.cli.main import COMMANDS, HelpFormatter, build_parser, main

__all__ = ["COMMANDS", "HelpFormatter", "build_parser", "main"]
