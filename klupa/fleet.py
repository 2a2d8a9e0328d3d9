"""A staged app update across every municipality, planned on the technician's laptop.

The guarantee is the per-Pi rollout's (:mod:`edge_gateway.rollout`), across the fleet: no
bench anywhere is sent the bundle before every bench of the fleet's stage before it has
committed it and soaked (or, past the canary, waits offline), and once any municipality halts
(`rolled_back`, `failed`, `regressed`, `stuck`) no Pi is asked to send anything more.

The stages are planned here, over every bench of the deployment's inventory: the canary
alone, then each ``--then`` share of the benches not yet placed, taken across the
municipalities in turn (every municipality's first bench, then every second one, ...). Each
Pi carries out its own part of a stage: ``klupa gateway ota rollout --stage … --upto K``
gets that municipality's benches of every stage (an empty stage as ``-``), so its own state
file, planned once, holds the same stages, and it begins none past K. This module is the
pure part (the plan, the fleet's state file, the table); :mod:`klupa.fleet_cli` runs the Pis.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_gateway import rollout as R
from edge_gateway.text import printable
from klupa.contract import MUNICIPALITY_IDS

ORDER = list(MUNICIPALITY_IDS)
# Words handed to a Pi's command line: safe unquoted in a remote shell (ssh joins its words).
SAFE_WORD = re.compile(r"^[A-Za-z0-9._,/:%=@+-]+$")
PLACEHOLDER = re.compile(r"\{([a-z_]*)\}")


class FleetError(Exception):
    """The fleet rollout cannot start or go on as asked; the message says what to do."""


# --------------------------------------------------------------------------- planning


def rank_across(benches: dict[str, str]) -> Callable[[str], tuple[int, int, str]]:
    """A bench's place in the fleet's order: its rank within its municipality (by id), then
    the municipality's place in the contract's order, so stages spread across them.
    ``benches`` maps each bench to its municipality."""
    by_m: dict[str, list[str]] = {}
    for b, m in benches.items():
        by_m.setdefault(m, []).append(b)
    index = {b: i for names in by_m.values() for i, b in enumerate(sorted(names))}
    place = {m: i for i, m in enumerate(ORDER)}
    return lambda b: (index[b], place.get(benches[b], len(ORDER)), benches[b])


def plan(canary: str, then: list[str], benches: dict[str, str]) -> list[list[str]]:
    """The fleet's stages: the canary alone, then each stage's share (``25%`` rounded up, a
    number, ``all``) of the benches not yet placed, in :func:`rank_across`'s order; what the
    last stage leaves joins it."""
    if canary not in benches:
        raise FleetError(f"{canary} is not a bench of the deployment's inventory (or of --only)")
    return R.plan_stages(canary, then, list(benches), set(), rank=rank_across(benches))


def split(stages: list[list[str]], benches: dict[str, str]) -> dict[str, list[list[str]]]:
    """Each municipality's part of every stage (the same number of stages, some empty)."""
    out: dict[str, list[list[str]]] = {}
    for m in sorted(set(benches.values()), key=lambda m: (ORDER + [m]).index(m)):
        out[m] = [[b for b in stage if benches[b] == m] for stage in stages]
    return out


def stage_arguments(pi_stages: list[list[str]]) -> list[str]:
    """``--stage a,b --stage - …``: a municipality's stages for its Pi's command line."""
    out: list[str] = []
    for s in pi_stages:
        out += ["--stage", ",".join(s) or "-"]
    return out


def pi_arguments(
    pi_stages: list[list[str]],
    k: int,
    remote: str,
    soak_s: float,
    *,
    no_wait: bool,
    retry: bool,
) -> list[str]:
    """What a Pi's ``klupa gateway ota rollout`` is given for the fleet's stage ``k``: the
    bundle's folder there, its municipality's part of every stage, ``--upto k``."""
    out = ["--bundle", remote, *stage_arguments(pi_stages), "--upto", str(k)]
    out += ["--soak", f"{soak_s:g}s", "--json-lines"]
    return out + (["--no-wait"] if no_wait else []) + (["--retry"] if retry else [])


def expand(template: str, values: dict[str, str]) -> list[str]:
    """A command template's words (split as a shell would, run without one), each
    ``{name}`` replaced by its value; an unknown name is an error that lists the known."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise FleetError(f"cannot split {template!r}: {exc}") from None

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join("{" + k + "}" for k in values)
            raise FleetError(f"{template!r}: no placeholder {{{name}}} (there are {known})")
        return values[name]

    return [PLACEHOLDER.sub(one, w) for w in words]


def safe_words(words: list[str]) -> list[str]:
    """``words``, each checked to need no quoting in a remote shell."""
    for w in words:
        if not SAFE_WORD.fullmatch(w):
            raise FleetError(f"{w!r} would need quoting on the Pi's command line")
    return words


# --------------------------------------------------------------------------- the state


@dataclass
class BenchView:
    """What the laptop last heard of one bench from its Pi's ``--json-lines``."""

    m: str
    stage: int
    state: str = R.PLANNED
    detail: str = ""
    since: float = 0.0
    fw: str | None = None


@dataclass
class FleetState:
    version: str
    sha256: str
    municipalities: list[str]
    stages: list[list[str]]
    benches: dict[str, BenchView] = field(default_factory=dict)
    stage_done: int = -1  # every Pi ended this stage with 0 or 4
    halted: str = ""
    started: float = 0.0

    def __post_init__(self) -> None:
        for b, v in list(self.benches.items()):
            if isinstance(v, dict):
                self.benches[b] = BenchView(**v)

    def municipality_of(self) -> dict[str, str]:
        return {b: v.m for b, v in self.benches.items()}

    def pi_stages(self) -> dict[str, list[list[str]]]:
        return split(self.stages, self.municipality_of())

    def pis_for(self, k: int) -> list[str]:
        """The municipalities with work in stages 0 to ``k``: a bench not yet done or skipped."""
        out = []
        for m, stages in self.pi_stages().items():
            if any(self.benches[b].state not in R.FINISHED for s in stages[: k + 1] for b in s):
                out.append(m)
        return out

    def left_waiting(self) -> list[str]:
        return sorted(b for b, v in self.benches.items() if v.state == R.WAITING)

    def heard(self, m: str, line: str) -> BenchView | None:
        """Take a ``--json-lines`` line of municipality ``m``'s Pi; the bench's view when its
        state or detail changed (a line that is not one is ignored: the Pi's own text)."""
        line = line.strip()
        if not line.startswith("{"):
            return None
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        if not isinstance(obj, dict) or obj.get("rollout") != 1:
            return None
        v = self.benches.get(str(obj.get("bench")))
        if v is None or v.m != m:  # a Pi speaks only for its own benches
            return None
        before = (v.state, v.detail)
        v.state = str(obj.get("state", v.state))
        v.detail = str(obj.get("detail", ""))
        v.since = float(obj.get("since") or 0.0) or v.since
        if obj.get("fw"):
            v.fw = str(obj["fw"])
        return v if (v.state, v.detail) != before else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"


def new_state(
    version: str, sha256: str, canary: str, then: list[str], benches: dict[str, str]
) -> FleetState:
    stages = plan(canary, then, benches)
    views = {b: BenchView(m=benches[b], stage=i) for i, s in enumerate(stages) for b in s}
    return FleetState(
        version=version,
        sha256=sha256,
        municipalities=sorted(set(benches.values()), key=lambda m: (ORDER + [m]).index(m)),
        stages=stages,
        benches=views,
    )


def state_path(deployment: Path, version: str) -> Path:
    return deployment / "rollouts" / f"rollout-{R.VERSION_FILE_RE.sub('_', version)}.json"


def save(path: Path, st: FleetState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    R.write_whole(str(path), st.to_json())


def load(path: Path) -> FleetState | None:
    if not path.exists():
        return None
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return FleetState(**raw)
    except (ValueError, TypeError) as exc:
        raise FleetError(
            f"{path} is not a fleet rollout state file ({exc}); move it away"
        ) from None


# --------------------------------------------------------------------------- the table


def table(st: FleetState, now: float) -> str:
    """municipality, bench, stage, state, version (as its Pi last said), since, detail."""
    head = ["municipality", "bench", "stage", "state", "version", "since", "detail"]
    rows = [head]
    for i, stage in enumerate(st.stages):
        for b in sorted(stage, key=lambda b: (st.municipalities.index(st.benches[b].m), b)):
            v = st.benches[b]
            since = R.since_text(v.since, now) if v.since else "-"
            row = [v.m, b, "canary" if i == 0 else str(i), v.state, v.fw or "-", since]
            rows.append([*row, printable(v.detail)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
