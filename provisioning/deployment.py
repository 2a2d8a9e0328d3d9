"""The technician's deployment folder: inventory.toml, secrets.toml, ota/, pki/, brokers/, cache/.

``inventory.toml`` is meant to be read and edited by people; the tool only ever rewrites
one bench's ``[benches.{id}.provisioned]`` table in it, in place, so comments and the order
of everything else survive. ``secrets.toml`` is mode 0600 and never printed. ``ota/`` holds
the OTA signing key (``signing-key.pem``, 0600): the one secret that makes bundles benches
accept, kept nowhere else (``provisioning.signing``); during a rotation also the key that
takes over (``next-signing-key.pem``), and the keys it replaced (``retired/``).
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from klupa.contract import BENCH_RE, MUNICIPALITIES, RESERVED_PREFIXES
from klupa.layout import Under
from provisioning import signing

WIFI_PLACEHOLDER = "CHANGE-ME"
# The pinned MicroPython release. Its image URLs and SHA-256s are filled in by the
# deployment from https://micropython.org/download/ESP32_GENERIC/ (and ESP32_GENERIC_S3);
# the tool never flashes an image it cannot check.
MICROPYTHON_VERSION = "1.27.0"
# Per chip: the release page, the stock build the benches run (../shared/DESIGN.md, principle 6: a
# module with PSRAM, so the app's bytecode has room in the heap) and the flash offset.
# bench-v1's ESP32-WROVER-E needs the SPIRAM variant (the plain build ignores the PSRAM);
# the ESP32-S3 build finds the S3's quad PSRAM by itself.
MICROPYTHON_IMAGES = {
    "esp32": ("https://micropython.org/download/ESP32_GENERIC/", "ESP32_GENERIC-SPIRAM", 0x1000),
    "esp32s3": ("https://micropython.org/download/ESP32_GENERIC_S3/", "ESP32_GENERIC_S3", 0x0),
}


class DeploymentError(Exception):
    """The deployment folder is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Municipality:
    id: str
    name: str
    lat: float
    lon: float
    gateway_host: str
    mqtt_port: int
    wifi_ssid: str
    # The benches' NTP server: the gateway (their MQTT host) unless the inventory names one,
    # so a bench on a network without Internet access still sets its clock (docs/protocol.md).
    ntp_server: str


@dataclass(frozen=True)
class Bench:
    id: str
    municipality: str
    board: str
    location: str
    lat: float
    lon: float
    notes: str
    provisioned: dict[str, Any]


@dataclass(frozen=True)
class FirmwareImage:
    chip: str
    version: str
    url: str
    image: str
    sha256: str
    offset: int
    build: str = ""
    # A build with a ROMFS partition (docs/provisioning.md): the one way a board without
    # PSRAM is accepted, since the app's bytecode then stays out of the heap.
    romfs: bool = False


def _toml_str(value: str) -> str:
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{out}"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _toml_str(str(value))


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically (never briefly world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_public(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def inventory_text() -> str:
    lines = [
        "# klupa deployment inventory: edit freely (TOML).",
        "# `klupa provision` only rewrites a bench's [benches.<id>.provisioned] table.",
        "",
        "[micropython]",
        "# The MicroPython release every bench runs. Per chip: `url` + `sha256` (downloaded",
        "# once into cache/ and checked), or `image` = a local .bin (sha256 optional).",
        "# Fill in sha256 from the release page before the first flash.",
        "# `build` names the stock build: the SPIRAM one for the ESP32-WROVER-E (bench-v1).",
        "# `klupa provision detect`/`selftest` refuse a board without PSRAM unless its chip's",
        "# image is a build with a ROMFS partition (`romfs = true`; stock releases have none:",
        "# docs/provisioning.md says how to make one for an ESP32-WROOM-32E).",
        f"version = {_toml_str(MICROPYTHON_VERSION)}",
        "",
    ]
    for chip, (page, build, offset) in MICROPYTHON_IMAGES.items():
        lines += [
            f"[micropython.{chip}]",
            f"# the v{MICROPYTHON_VERSION} {build} .bin link from {page}",
            f"build = {_toml_str(build)}",
            "romfs = false",
            'url = ""',
            'sha256 = ""',
            'image = ""',
            f"offset = {offset:#x}",
            "",
        ]
    # Each municipality's town centre (klupa.contract), until a bench's own site is edited in.
    for m in MUNICIPALITIES.values():
        lines += [
            f"[municipalities.{m.id}]",
            f"name = {_toml_str(m.name)}",
            f"lat = {m.lat}",
            f"lon = {m.lon}",
            f"gateway_host = {_toml_str(f'klupa-{m.id}.local')}",
            "mqtt_port = 8883",
            f"wifi_ssid = {_toml_str(f'klupa-{m.id}')}",
            '# ntp_server = ""  # the benches\' NTP server; default: gateway_host',
            "",
        ]
    for m in MUNICIPALITIES.values():
        lines += [
            f"[benches.{m.id}-01]",
            f"municipality = {_toml_str(m.id)}",
            'board = "bench-v1"',
            f"location = {_toml_str(f'{m.name}, site to be confirmed')}",
            f"lat = {m.lat}",
            f"lon = {m.lon}",
            'notes = ""',
            "",
        ]
    return "\n".join(lines)


def secrets_text(service_passwords: dict[str, str]) -> str:
    lines = [
        "# klupa deployment secrets. Mode 0600. Never commit, print or mail this file.",
        "# (The OTA signing key is ota/signing-key.pem, also 0600.)",
        "",
        "[wifi]",
        f"# Wi-Fi password per municipality (replace {WIFI_PLACEHOLDER}).",
    ]
    for mid in MUNICIPALITIES:
        lines.append(f"{mid} = {_toml_str(WIFI_PLACEHOLDER)}")
    lines += [
        "",
        "[mqtt]",
        "# MQTT passwords: gateways, command tools (ops-) and registered benches (generated).",
    ]
    for user, pw in service_passwords.items():
        lines.append(f"{_toml_str(user)} = {_toml_str(pw)}")
    return "\n".join(lines) + "\n"


def _render_secrets(data: dict[str, Any]) -> str:
    lines = [
        "# klupa deployment secrets. Mode 0600. Never commit, print or mail this file.",
        "",
    ]
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines += ["", f"[{name}]"]
        for key, value in table.items():
            lines.append(f"{_toml_str(key)} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def generate_password() -> str:
    return secrets.token_urlsafe(24)


class Deployment:
    """One deployment folder, loaded."""

    # The folder's layout below root (besides inventory.toml and secrets.toml, read at once).
    pki_dir = Under[Path]("pki")
    cache_dir = Under[Path]("cache")
    build_dir = Under[Path]("build")
    ota_dir = Under[Path]("ota")
    ota_key_path = Under[Path]("signing-key.pem", base="ota_dir")
    ota_next_key_path = Under[Path]("next-signing-key.pem", base="ota_dir")

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.inventory_path = self.root / "inventory.toml"
        self.secrets_path = self.root / "secrets.toml"
        if not self.inventory_path.is_file():
            raise DeploymentError(
                f"{self.inventory_path} not found: create the folder with "
                f"`klupa provision init {self.root}` or pass --deploy DIR"
            )
        self.reload()

    def reload(self) -> None:
        try:
            self.inventory: dict[str, Any] = tomllib.loads(
                self.inventory_path.read_text(encoding="utf-8")
            )
        except tomllib.TOMLDecodeError as e:
            raise DeploymentError(f"{self.inventory_path}: {e}") from None
        try:
            self.secrets: dict[str, Any] = tomllib.loads(
                self.secrets_path.read_text(encoding="utf-8")
            )
        except FileNotFoundError:
            raise DeploymentError(f"{self.secrets_path} not found") from None
        except tomllib.TOMLDecodeError as e:
            # The message may quote a secret line: say only where it is.
            where = str(e).rsplit("(", 1)[-1].rstrip(")") if "(" in str(e) else "?"
            raise DeploymentError(f"{self.secrets_path} is not valid TOML ({where})") from None

    # ---------------------------------------------------------------- paths

    def broker_dir(self, municipality: str) -> Path:
        return self.root / "brokers" / municipality

    # ---------------------------------------------------------------- inventory

    def municipality(self, mid: str) -> Municipality:
        table = self.inventory.get("municipalities", {}).get(mid)
        if table is None:
            raise DeploymentError(f"municipality {mid!r} is not in {self.inventory_path}")
        gateway_host = str(table["gateway_host"])
        return Municipality(
            id=mid,
            name=str(table.get("name", mid)),
            lat=float(table.get("lat", 0.0)),
            lon=float(table.get("lon", 0.0)),
            gateway_host=gateway_host,
            mqtt_port=int(table.get("mqtt_port", 8883)),
            wifi_ssid=str(table["wifi_ssid"]),
            ntp_server=str(table.get("ntp_server") or gateway_host),
        )

    def municipalities(self) -> list[str]:
        return list(self.inventory.get("municipalities", {}))

    def bench(self, bid: str) -> Bench:
        table = self.inventory.get("benches", {}).get(bid)
        if table is None:
            raise DeploymentError(f"bench {bid!r} is not in {self.inventory_path}")
        if not BENCH_RE.fullmatch(bid):
            raise DeploymentError(f"bench id {bid!r} is not a valid bench id")
        if bid.startswith(RESERVED_PREFIXES):
            raise DeploymentError(
                f"bench id {bid!r} is reserved: bench ids never begin with "
                f"{' or '.join(repr(p) for p in RESERVED_PREFIXES)} (the gateway's and the "
                "command tool's MQTT users); rename it in inventory.toml"
            )
        mid = str(table.get("municipality", ""))
        self.municipality(mid)
        return Bench(
            id=bid,
            municipality=mid,
            board=str(table.get("board", "bench-v1")),
            location=str(table.get("location", "")),
            lat=float(table.get("lat", 0.0)),
            lon=float(table.get("lon", 0.0)),
            notes=str(table.get("notes", "")),
            provisioned=dict(table.get("provisioned", {})),
        )

    def benches(self) -> list[Bench]:
        return [self.bench(bid) for bid in self.inventory.get("benches", {})]

    def unprovisioned(self) -> list[Bench]:
        return [b for b in self.benches() if not b.provisioned]

    def firmware_image(self, chip: str) -> FirmwareImage:
        mp = self.inventory.get("micropython", {})
        table = mp.get(chip)
        if not isinstance(table, dict):
            raise DeploymentError(f"no [micropython.{chip}] image in {self.inventory_path}")
        image = str(table.get("image", ""))
        if image and not os.path.isabs(image):
            image = str(self.root / image)
        return FirmwareImage(
            chip=chip,
            version=str(mp.get("version", "")),
            url=str(table.get("url", "")),
            image=image,
            sha256=str(table.get("sha256", "")).lower(),
            offset=int(table.get("offset", 0)),
            build=str(table.get("build", "")),
            romfs=table.get("romfs") is True,
        )

    def record_provisioned(self, bid: str, record: dict[str, Any]) -> None:
        """Replace the bench's [benches.{id}.provisioned] table, leaving the rest as written."""
        self.bench(bid)
        text = self.inventory_path.read_text(encoding="utf-8")
        lines = text.splitlines()
        header = f"[benches.{bid}.provisioned]"
        body = [header] + [f"{k} = {_toml_value(v)}" for k, v in record.items()]
        out: list[str] = []
        i = 0
        replaced = False
        while i < len(lines):
            if lines[i].strip() == header:
                i += 1
                while i < len(lines) and not lines[i].lstrip().startswith("["):
                    i += 1
                out += body + [""]
                replaced = True
                continue
            out.append(lines[i])
            i += 1
        if not replaced:
            # Put it right after the bench's own table so the two stay together.
            bench_header = f"[benches.{bid}]"
            idx = next(j for j, ln in enumerate(out) if ln.strip() == bench_header)
            j = idx + 1
            while j < len(out) and not out[j].lstrip().startswith("["):
                j += 1
            while j > idx + 1 and out[j - 1].strip() == "":
                j -= 1
            out[j:j] = [""] + body
        write_public(self.inventory_path, "\n".join(out).rstrip("\n") + "\n")
        self.reload()

    # ---------------------------------------------------------------- secrets

    @property
    def ota_signing_key(self) -> rsa.RSAPrivateKey:
        """The key that signs bundles (only ever read from this folder)."""
        if not self.ota_key_path.is_file():
            raise DeploymentError(
                f"{self.ota_key_path} not found: `klupa provision init {self.root}` creates it"
            )
        try:
            return signing.load(self.ota_key_path)
        except signing.SigningKeyError as e:
            raise DeploymentError(str(e)) from None

    @property
    def ota_anchor(self) -> str:
        """What every bench provisioned now trusts bundles by: the signing key's public half."""
        return signing.anchor(self.ota_signing_key)

    def ensure_ota_signing_key(self) -> None:
        if not self.ota_key_path.is_file():
            self.ota_dir.mkdir(exist_ok=True)
            write_private(self.ota_key_path, signing.to_pem(signing.generate()))

    def next_ota_signing_key(self) -> rsa.RSAPrivateKey:
        """The key a rotation hands the benches over to, made the first time it is asked for."""
        if not self.ota_next_key_path.is_file():
            write_private(self.ota_next_key_path, signing.to_pem(signing.generate()))
        try:
            return signing.load(self.ota_next_key_path)
        except signing.SigningKeyError as e:
            raise DeploymentError(str(e)) from None

    def promote_ota_signing_key(self) -> str:
        """End a rotation: the next key signs from now on, the old one goes to ota/retired/
        (kept: a bench that missed the rotation bundle still takes that bundle). Its anchor."""
        if not self.ota_next_key_path.is_file():
            raise DeploymentError(
                f"no rotation under way ({self.ota_next_key_path} not found): "
                "`klupa bundle --rotate` starts one"
            )
        old = self.ota_anchor
        retired = self.ota_dir / "retired"
        retired.mkdir(exist_ok=True)
        os.replace(self.ota_key_path, retired / f"{signing.key_id(old)}.pem")
        os.replace(self.ota_next_key_path, self.ota_key_path)
        return self.ota_anchor

    def wifi_password(self, mid: str) -> str:
        return str(self.secrets.get("wifi", {}).get(mid, WIFI_PLACEHOLDER))

    def mqtt_password(self, user: str) -> str | None:
        pw = self.secrets.get("mqtt", {}).get(user)
        return None if pw is None else str(pw)

    def ensure_mqtt_password(self, user: str) -> str:
        """The user's MQTT password, generated and stored (0600) the first time."""
        pw = self.mqtt_password(user)
        if pw is not None:
            return pw
        pw = generate_password()
        self.secrets.setdefault("mqtt", {})[user] = pw
        write_private(self.secrets_path, _render_secrets(self.secrets))
        return pw

    def secret_values(self) -> list[str]:
        """Every secret string in secrets.toml and the OTA signing keys (for redaction and
        for tests)."""
        out: list[str] = []

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, str) and v and v != WIFI_PLACEHOLDER:
                out.append(v)

        walk(self.secrets)
        for pem in (self.ota_key_path, self.ota_next_key_path):
            if pem.is_file():  # the key's private lines (its first ones hold the public modulus)
                out += [ln for ln in pem.read_text().splitlines()[9:] if len(ln) == 64]
        return out
