"""One module per `ncalm` subcommand (see ncalm.cli.COMMANDS)."""
