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
