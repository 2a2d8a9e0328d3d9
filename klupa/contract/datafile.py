"""The data files klupa ships beside its code (TOML package data), read into frozen dataclasses.

A module reads its file once, as it is imported. Each table is checked against the dataclass it
fills: a key for every field (or the field's default), no other key, each value of the field's
type (a float may be written as a whole number; a tuple as an array). A broken file stops that
import with one line naming the file and the field, e.g.
``klupa/contract/contract.toml: municipalities[3].lat: expected float, got '44.42'``,
instead of a wrong value turning up later. Part of the leaf ``klupa.contract``: it imports nothing
of ours. The virtual board and the demo read their data files with it too.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


class DataFileError(ValueError):
    """A data file klupa ships is not what its reader expects; the message names the field."""


class DataFile:
    """A TOML file, parsed; its tables are taken out with rows() and table()."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name  # as the errors name the file
        try:
            self.data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DataFileError(f"{self.name}: {exc}") from None

    @classmethod
    def read(cls, package: str, name: str) -> DataFile:
        """The file ``name`` of ``package`` (its package data), wherever klupa is installed."""
        text = (resources.files(package) / name).read_text(encoding="utf-8")
        return cls(f"{package.replace('.', '/')}/{name}", text)

    def fail(self, where: str, why: str) -> DataFileError:
        """The error to raise for a value the reader's own checks refuse."""
        return DataFileError(f"{self.name}: {where}: {why}")

    def rows(self, cls: type[T], key: str) -> list[T]:
        """The array of tables ``key``, each as a ``cls``, in the file's order."""
        found = self._top(key, list, "an array of tables")
        return [self.record(cls, row, f"{key}[{i}]") for i, row in enumerate(found)]

    def table(self, cls: type[T], key: str) -> dict[str, T]:
        """The table ``key`` of tables, each as a ``cls`` under its own key, in the file's order."""
        found = self._top(key, dict, "a table")
        return {name: self.record(cls, row, f"{key}.{name}") for name, row in found.items()}

    def record(self, cls: type[T], row: object, where: str) -> T:
        """``row`` as a ``cls``: a key for each of its fields (or the field's default), no other."""
        if not isinstance(row, dict):
            raise self.fail(where, f"expected a table, got {row!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(row.keys() - fields.keys())
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}", f"unknown key (keys: {', '.join(fields)})")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, f in fields.items():
            if name in row:
                values[name] = self._value(hints[name], row[name], f"{where}.{name}")
            elif f.default is dataclasses.MISSING:
                raise self.fail(f"{where}.{name}", "missing")
        return cls(**values)

    def _top(self, key: str, kind: type, what: str) -> Any:
        found = self.data.get(key)
        if found is None:
            raise self.fail(key, "missing")
        if not isinstance(found, kind):
            raise self.fail(key, f"expected {what}, got {found!r}")
        return found

    def _value(self, kind: Any, value: object, where: str) -> Any:
        if typing.get_origin(kind) is tuple:
            args = typing.get_args(kind)
            if not isinstance(value, list):
                raise self.fail(where, f"expected an array, got {value!r}")
            kinds = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
            if len(kinds) != len(value):
                raise self.fail(where, f"expected {len(kinds)} values, got {len(value)}")
            pairs = enumerate(zip(kinds, value, strict=True))
            return tuple(self._value(k, v, f"{where}[{i}]") for i, (k, v) in pairs)
        if kind is float and type(value) is int:
            return float(value)
        if type(value) is not kind:
            raise self.fail(where, f"expected {kind.__name__}, got {value!r}")
        return value
