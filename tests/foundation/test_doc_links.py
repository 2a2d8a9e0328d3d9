"""Every file the documentation names is in the repository.

A reference is a path-like word in a Markdown file, or in a Python file's comments and
docstrings: ``folder/name.ext`` (``docs/protocol.md``, ``bench/ota.py``), a bare upper-case
Markdown name (``README.md``), or a Markdown link's target. It resolves when the file exists
relative to the repository's root, to the referring file's folder, or as the tail of a tracked
path (``bench/ota.py`` is ``firmware/bench/ota.py``). Not references: URLs, absolute paths
(a bench's flash, a Pi's ``/etc``), globs and templates (``benchmarks/<name>.py``), paths in a
technician's deployment folder (``brokers/mostar/passwd``: ``provisioning/deployment.py``),
and ``../shared/…``, the shared folder beside the checkout that holds the design notes.

    python tests/foundation/test_doc_links.py     # lists every dangling reference
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIP_PREFIXES = ("node_modules/",)
# Extensions of files that live in this repository (not a deployment folder's keys and
# certificates, nor a MicroPython image).
EXTS = "py|md|json|toml|mjs|js|sh|txt|html|css|service|conf|yml|yaml|ini|sql|cfg|svg|png"
PATH_RE = re.compile(
    rf"(?<![\w./:~$@{{}}*-])((?:\.\.?/)*[\w.-]+(?:/[\w.-]+)+\.(?:{EXTS}))(?![\w/-])"
)
UPPER_MD_RE = re.compile(r"(?<![\w./-])([A-Z][A-Z0-9_-]+\.md)\b")
MD_LINK_RE = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
OUTSIDE = "../shared/"
DEPLOYMENT_FOLDERS = ("brokers/", "pki/", "ota/", "cache/", "rollouts/")


@dataclass(frozen=True)
class Reference:
    path: str  # the referring file, relative to the repository
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.target}"


@lru_cache(maxsize=1)
def tracked() -> tuple[str, ...]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return tuple(p for p in out.split("\0") if p and not p.startswith(SKIP_PREFIXES))


@lru_cache(maxsize=1)
def _tails() -> frozenset[str]:
    tails: set[str] = set()
    for p in tracked():
        parts = p.split("/")
        tails.update("/".join(parts[i:]) for i in range(len(parts)))
        tails.update("/".join(parts[i:-1]) for i in range(len(parts) - 1))  # folders too
    return frozenset(tails)


def _python_text(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of each comment and docstring."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.string
    except (tokenize.TokenError, SyntaxError):
        pass
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(
            node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        ) and (doc := ast.get_docstring(node, clean=False)):
            first = node.body[0]
            for i, text in enumerate(doc.splitlines()):
                yield first.lineno + i, text


def _markdown_text(source: str) -> Iterator[tuple[int, str]]:
    yield from enumerate(source.splitlines(), 1)


def references(rel: str) -> Iterator[Reference]:
    source = (REPO / rel).read_text(errors="replace")
    markdown = rel.endswith(".md")
    lines = _markdown_text(source) if markdown else _python_text(source)
    for line, text in lines:
        found = [m.group(1) for m in PATH_RE.finditer(text)]
        found += [m.group(1) for m in UPPER_MD_RE.finditer(text)]
        if markdown:
            found += [
                m.group(1)
                for m in MD_LINK_RE.finditer(text)
                if not re.match(r"[a-z][a-z0-9+.-]*:", m.group(1))  # a URL or mailto:
            ]
        for target in dict.fromkeys(found):
            yield Reference(rel, line, target)


def resolves(ref: Reference) -> bool:
    target = ref.target
    if target.startswith((OUTSIDE, "/", *DEPLOYMENT_FOLDERS)) or any(c in target for c in "*{}<>$"):
        return True
    for base in (REPO, (REPO / ref.path).parent):
        path = (base / target).resolve()
        if path.is_relative_to(REPO) and path.exists():
            return True
    return not target.startswith("..") and target.removeprefix("./") in _tails()


def dangling() -> list[Reference]:
    files = [p for p in tracked() if p.endswith((".md", ".py")) and (REPO / p).is_file()]
    return [r for p in files for r in references(p) if not resolves(r)]


def test_every_file_the_docs_name_is_in_the_repository() -> None:
    bad = dangling()
    assert not bad, f"{len(bad)} reference(s) to files not in the repository:\n" + "\n".join(
        map(str, bad)
    )


def test_the_checker_finds_a_dangling_reference_and_passes_a_real_one(tmp_path: Path) -> None:
    ok = Reference("docs/gateway.md", 1, "docs/protocol.md")
    tail = Reference("docs/firmware.md", 1, "bench/ota.py")
    link = Reference("docs/gateway.md", 1, "protocol.md")
    assert resolves(ok) and resolves(tail) and resolves(link)
    for target in ("spec/PROTOCOL.md", "DESIGN.md", "klupa/testing/vm.py", "../docs/nope.md"):
        assert not resolves(Reference("docs/gateway.md", 1, target)), target
    assert resolves(Reference("README.md", 1, "../shared/DESIGN.md"))
    text = "see spec/PROTOCOL.md and https://example.org/a/b.py, /etc/klupa/x.toml, DESIGN.md"
    assert [m.group(1) for m in PATH_RE.finditer(text)] == ["spec/PROTOCOL.md"]
    assert [m.group(1) for m in UPPER_MD_RE.finditer(text)] == ["DESIGN.md"]


if __name__ == "__main__":
    refs = dangling()
    print("\n".join(map(str, refs)))
    print(f"{len(refs)} dangling reference(s)", file=sys.stderr)
    sys.exit(1 if refs else 0)
