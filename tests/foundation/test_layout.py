"""klupa.layout.Under: a path declared once as a place below a folder the instance holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from klupa.layout import Under


@dataclass
class Site:
    town: str
    root: PurePosixPath
    etc = Under[PurePosixPath]("/etc/klupa")
    config = Under[PurePosixPath]("gateway-{self.town}.toml", base="etc")
    store = Under[PurePosixPath]("/var/lib/klupa", "{self.town}.sqlite")


def test_a_place_is_its_base_joined_with_its_parts_and_follows_the_base() -> None:
    site = Site("mostar", PurePosixPath("/mnt/sd"))
    # A part written from "/" is still below the base: the Pi's files under a mounted card.
    assert site.etc == PurePosixPath("/mnt/sd/etc/klupa")
    assert site.config == PurePosixPath("/mnt/sd/etc/klupa/gateway-mostar.toml")
    assert site.store == PurePosixPath("/mnt/sd/var/lib/klupa/mostar.sqlite")
    site.root = PurePosixPath("/")
    site.town = "ravno"
    assert site.config == PurePosixPath("/etc/klupa/gateway-ravno.toml")


def test_a_value_with_braces_is_not_read_as_a_template() -> None:
    assert Site("{self.root}", PurePosixPath("/")).config.name == "gateway-{self.root}.toml"


def test_a_place_is_read_only_as_a_property_is() -> None:
    site = Site("mostar", PurePosixPath("/"))
    with pytest.raises(AttributeError, match="Site.config is a place below etc"):
        site.config = PurePosixPath("/elsewhere")
    assert site.config == PurePosixPath("/etc/klupa/gateway-mostar.toml")


def test_on_the_class_it_is_the_declaration_and_a_local_path_stays_local() -> None:
    assert isinstance(Site.config, Under)

    @dataclass
    class Work:
        root: Path
        log = Under[Path]("logs", "day.log")

    assert Work(Path("w")).log == Path("w/logs/day.log")
    assert type(Work(Path("w")).log) is type(Path("w"))
