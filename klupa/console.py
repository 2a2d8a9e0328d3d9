"""The argument parser every `klupa` command uses: a usage error is one line on stderr.

docs/interfaces.md: "Errors are one clear line on stderr, never a bare traceback." argparse's own
error() prints the whole usage block first; this one prints only what is wrong, and points at
`--help` for the rest. Sub-command parsers made by add_subparsers() are of the same class.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, NoReturn


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


@dataclass(frozen=True)
class Option:
    """One argument of a command, as ``add_argument(*flags, **settings)`` takes it."""

    flags: tuple[str, ...]
    settings: dict[str, Any]


def option(*flags: str, **settings: Any) -> Option:
    return Option(flags, settings)


@dataclass(frozen=True)
class OneCommand:
    """A program whose one sub-command must be named (``klupa grafana dashboards``, ``klupa
    influx setup``), as data: ``line``, the program and its command as typed; ``description``,
    the program's ``--help``; ``help``, the command's line in it; ``about``, the command's own
    ``--help``; ``options``, the command's arguments."""

    line: str
    description: str
    help: str
    about: str
    options: tuple[Option, ...]

    def parse(self, argv: list[str]) -> argparse.Namespace:
        """The command's arguments from ``argv``; a usage error exits 2 (`Parser.error`)."""
        prog, _, command = self.line.rpartition(" ")
        parser = Parser(prog=prog, description=self.description)
        sub = parser.add_subparsers(dest="cmd", required=True)
        p = sub.add_parser(command, help=self.help, description=self.about)
        for o in self.options:
            p.add_argument(*o.flags, **o.settings)
        return parser.parse_args(argv)
