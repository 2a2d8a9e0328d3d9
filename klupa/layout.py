"""A folder's layout as data: each path a class names is one line, ``Under(*parts)``.

A class whose files lie below a folder it holds (a deployment folder, a server's work folder,
the Pi's root) declares each file once as a place below that folder, instead of one property
per file::

    class Deployment:
        pki_dir = Under[Path]("pki")
        ota_key_path = Under[Path]("signing-key.pem", base="ota_dir")

``Deployment(...).pki_dir`` is then ``self.root / "pki"``, typed ``Path`` for mypy.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Generic, TypeVar, overload

P = TypeVar("P", bound=PurePath)


class Under(Generic[P]):
    """On an instance: its attribute ``base`` (a path, or another ``Under``) joined with
    ``parts``. A part names a place below the base even when written from ``/`` (as the Pi's
    files are), and may hold the instance's attributes as ``{self.name}``."""

    def __init__(self, *parts: str, base: str = "root") -> None:
        self.parts = parts
        self.base = base

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Under[P]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> P: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Under[P] | P:
        if obj is None:
            return self
        base: P = getattr(obj, self.base)
        return base.joinpath(*(part.format(self=obj).lstrip("/") for part in self.parts))

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __set__(self, obj: object, value: object) -> None:
        # Read-only, as a property is: a path follows its base, it is never set on its own.
        raise AttributeError(f"{type(obj).__name__}.{self.name} is a place below {self.base}")
