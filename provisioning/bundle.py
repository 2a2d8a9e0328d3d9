"""`klupa bundle`: the app bundle a bench runs, and the manifest that vouches for it.

The firmware's ``.py`` files are compiled with ``mpy-cross -O3`` to ``.mpy``, except the root
``boot.py`` and ``main.py`` (MicroPython runs those only as source). ``-O3`` leaves out
``assert`` statements (the firmware has none) and the line-number tables: a traceback on the
bench names the file and function but not the line, and the bytecode, which sits in the
bench's GC heap, is about 7 % smaller. The manifest lists
every file's device path, size and SHA-256 and carries ``sig``, an RSASSA-PKCS1-v1_5 SHA-256
signature by the deployment's OTA signing key (``provisioning.signing``; its private half is
only ever in the deployment folder) over its canonical form: the manifest without ``sig``, as
JSON with sorted keys and no spaces (``json.dumps(m, sort_keys=True, separators=(",", ":"))``),
UTF-8. A bench checks it against its anchor (the key's public modulus) and refuses a version
below the highest it committed. A rotation bundle also names ``anchor``: the public modulus
of the key that signs from then on, which a bench takes when it commits that bundle. Its
``rom`` entry (path, size, SHA-256, like a file's) is ``app.rom``: the app's packages as one
ROMFS image (``provisioning.romfs``), which a bench with a ROMFS partition also downloads and
writes there once the new app is healthy; the others ignore it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from boards.mpy import MpyCrossMissing, mpy_cross_command
from klupa import shipped
from klupa.console import Parser
from provisioning import signing

SOURCE_ONLY = ("boot.py", "main.py")
ROM_NAME = "app.rom"
SKIP_DIRS = {"__pycache__", "tests", ".mypy_cache"}
MANIFEST_NAME = "manifest.json"
DEFAULT_VERSION = "0.1.0"
# The app's version as the firmware declares it: `FW = "…"` (bench/app.py, what the bench
# reports in its birth and boot event), or `VERSION` / `FW_VERSION`.
VERSION_RE = re.compile(r"""^(?:FW_VERSION|VERSION|FW)\s*=\s*["']([^"']+)["']""", re.M)


class BundleError(Exception):
    """The bundle cannot be built (a file does not compile, a key is missing)."""


@dataclass(frozen=True)
class Bundle:
    dir: Path
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def files(self) -> list[dict[str, Any]]:
        return list(self.manifest["files"])

    def read(self, path: str) -> bytes:
        return (self.dir / path).read_bytes()

    def contents(self) -> dict[str, bytes]:
        """Every file the manifest lists, by its absolute path on the board."""
        return {"/" + f["path"]: self.read(f["path"]) for f in self.files()}


def _entry(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def canonical(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(
    manifest: dict[str, Any], key: rsa.RSAPrivateKey, anchor: str | None = None
) -> dict[str, Any]:
    """The manifest signed by ``key``; ``anchor``: the public modulus (hex) of the key the
    benches are to trust from this bundle's commit on (a rotation)."""
    out = {k: v for k, v in manifest.items() if k not in ("sig", "anchor")}
    if anchor is not None:
        out["anchor"] = anchor
    out["sig"] = signing.sign(key, canonical(out))
    return out


def verify(manifest: dict[str, Any], anchor: str) -> bool:
    """The signature check a bench makes, against ``anchor`` (the public modulus, hex)."""
    return signing.verify(anchor, canonical(manifest), str(manifest.get("sig", "")))


def firmware_version(firmware_dir: Path) -> str:
    """The version the firmware declares (``FW = "…"`` or ``VERSION = "…"`` in bench/), else
    the default."""
    for candidate in sorted((firmware_dir / "bench").glob("*.py")):
        m = VERSION_RE.search(candidate.read_text(encoding="utf-8", errors="replace"))
        if m:
            return m.group(1)
    return DEFAULT_VERSION


def _sources(firmware_dir: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(firmware_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith((".pyc", ".pyi")):
                continue
            out.append(Path(dirpath, name).relative_to(firmware_dir))
    return out


def build_bundle(
    firmware_dir: Path,
    out_dir: Path,
    key: rsa.RSAPrivateKey,
    version: str | None = None,
    anchor: str | None = None,
) -> Bundle:
    """Compile and hash the firmware into ``out_dir`` (replaced), with a manifest signed by
    ``key`` (naming ``anchor`` for a rotation)."""
    firmware_dir = Path(firmware_dir)
    if not (firmware_dir / "main.py").is_file() and not (firmware_dir / "bench").is_dir():
        raise BundleError(f"{firmware_dir} does not look like the firmware folder")
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files: list[dict[str, Any]] = []
    for rel in _sources(firmware_dir):
        src = firmware_dir / rel
        if rel.suffix == ".py" and rel.as_posix() not in SOURCE_ONLY:
            dest_rel = rel.with_suffix(".mpy")
            dest = staging / dest_rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                command = mpy_cross_command(src, dest, rel.as_posix())
            except MpyCrossMissing as e:
                raise BundleError(str(e)) from None
            proc = subprocess.run(command, capture_output=True, text=True)
            if proc.returncode != 0:
                detail = (proc.stderr or proc.stdout).strip().splitlines()
                raise BundleError(
                    f"mpy-cross could not compile {rel}: {detail[-1] if detail else '?'}"
                )
        else:
            dest_rel = rel
            dest = staging / dest_rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        files.append(_entry(dest_rel.as_posix(), dest.read_bytes()))
    from provisioning import romfs

    contents = {"/" + f["path"]: (staging / f["path"]).read_bytes() for f in files}
    image = romfs.build_image(romfs.rom_files(contents))
    (staging / ROM_NAME).write_bytes(image)
    manifest = sign(
        {
            "version": version or firmware_version(firmware_dir),
            "files": files,
            "rom": _entry(ROM_NAME, image),
        },
        key,
        anchor,
    )
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return Bundle(dir=out_dir, manifest=manifest)


def load_bundle(bundle_dir: Path, anchor: str) -> Bundle:
    """A built bundle, checked: the signature against ``anchor``, every file's size and hash."""
    manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text())
    if not verify(manifest, anchor):
        raise BundleError(
            f"{bundle_dir / MANIFEST_NAME}: not signed by the OTA key {signing.key_id(anchor)}"
        )
    for f in manifest["files"] + ([manifest["rom"]] if "rom" in manifest else []):
        data = (bundle_dir / f["path"]).read_bytes()
        if len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise BundleError(f"{bundle_dir / f['path']} differs from the manifest")
    return Bundle(dir=bundle_dir, manifest=manifest)


KEY_ENV = "KLUPA_OTA_SIGNING_KEY"  # the path of a PEM signing key, for CI-like builds


def _key_from_args(args: argparse.Namespace) -> tuple[rsa.RSAPrivateKey, str | None]:
    """The signing key, and the anchor a rotation hands over to (or None)."""
    if args.rotate or args.promote:
        if not args.deploy:
            raise BundleError("--rotate and --promote need --deploy DIR (the keys live there)")
    path = args.key_file or os.environ.get(KEY_ENV)
    if path and not args.deploy:
        try:
            return signing.load(Path(path)), None
        except signing.SigningKeyError as e:
            raise BundleError(str(e)) from None
    if args.deploy:
        from provisioning.deployment import Deployment

        dep = Deployment(Path(args.deploy))
        if args.promote:
            anchor = dep.promote_ota_signing_key()
            print(f"OTA signing key {signing.key_id(anchor)} signs from now on")
        if args.rotate:
            return dep.ota_signing_key, signing.anchor(dep.next_ota_signing_key())
        return dep.ota_signing_key, None
    raise BundleError(f"no OTA signing key: pass --deploy DIR, --key-file PEM or set {KEY_ENV}")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="klupa bundle",
        description="Build the app bundle (firmware compiled to .mpy, signed manifest).",
    )
    parser.add_argument(
        "--firmware", help="firmware folder (default: the one installed with klupa)"
    )
    parser.add_argument(
        "--out", default="build/bundle", help="output folder (default: %(default)s)"
    )
    parser.add_argument("--version", help="bundle version (default: the firmware's VERSION)")
    parser.add_argument(
        "--deploy", help="deployment folder whose OTA signing key signs the manifest"
    )
    parser.add_argument("--key-file", help="a PEM file holding the OTA signing key")
    parser.add_argument(
        "--rotate",
        action="store_true",
        help="hand the benches over to the deployment's next signing key (made if missing) "
        "when they commit this bundle",
    )
    parser.add_argument(
        "--promote",
        action="store_true",
        help="first end the rotation: the next key becomes the signing key, the old one retires",
    )
    args = parser.parse_args(argv)
    try:
        key, anchor = _key_from_args(args)
        firmware = Path(args.firmware) if args.firmware else shipped.firmware_dir()
        bundle = build_bundle(firmware, Path(args.out), key, args.version, anchor)
    except (BundleError, OSError, ValueError) as e:
        print(f"klupa bundle: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # deployment errors and the like: one line, no traceback
        print(f"klupa bundle: {e}", file=sys.stderr)
        return 1
    size = sum(int(f["size"]) for f in bundle.files())
    rom = int(bundle.manifest["rom"]["size"])
    print(
        f"bundle {bundle.version}: {len(bundle.files())} files, {size} bytes in {bundle.dir}; "
        f"the packages as a ROMFS image, {rom} bytes ({ROM_NAME}); signed by OTA key "
        f"{signing.key_id(signing.anchor(key))}"
    )
    if anchor:
        print(
            f"rotation: benches that commit it trust key {signing.key_id(anchor)} from then on; "
            "once every bench reports `applied`, build the next bundle with --promote"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
