"""The argument parser every `klupa` command uses: a usage error is one line on stderr.

docs/interfaces.md: "Errors are one clear line on stderr, never a bare traceback." argparse's own
error() prints the whole usage block first; this one prints only what is wrong, and points at
`--help` for the rest. Sub-command parsers made by add_subparsers() are of the same class.
"""

from __future__ import annotations

import argparse
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def with_one_command(
    prog: str, description: str, command: str, help: str, about: str
) -> tuple[Parser, argparse.ArgumentParser]:
    """A parser for ``prog`` whose one sub-command ``command`` must be named (``klupa grafana
    dashboards``, ``klupa influx setup``): the parser, and the sub-command's for its arguments.
    ``help`` is its line in ``prog --help``, ``about`` its own ``--help``'s description."""
    parser = Parser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="cmd", required=True)
    return parser, sub.add_parser(command, help=help, description=about)
