"""The `register` step: the bench's MQTT password and ACL in its municipality's broker files, its
record in the inventory, and its case label."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from provisioning import broker
from provisioning.bundle import MANIFEST_NAME
from provisioning.deployment import Bench
from provisioning.device import Board, BoardError
from provisioning.errors import StepError

if TYPE_CHECKING:
    from provisioning.steps import Run


def _facts_from_board(run: Run) -> None:
    wanted = ("mac", "micropython", "app")
    if all(run.facts.get(k) for k in wanted) or not run.port or run.port == "-":
        return
    try:
        with Board(run.port, timeout=5.0) as board:
            f = board.facts()
            run.facts.setdefault("micropython", f.get("mpy", ""))
            if f.get("mac"):
                run.facts.setdefault("mac", f["mac"])
            if f.get("machine") and "chip" not in run.facts:
                run.facts["chip"] = "ESP32-S3" if "S3" in f["machine"] else "ESP32"
            manifest = board.read_text("/" + MANIFEST_NAME)
            if manifest and "app" not in run.facts:
                run.facts["app"] = str(json.loads(manifest).get("version", ""))
    except (BoardError, ValueError):
        pass


def step_register(run: Run) -> str:
    _facts_from_board(run)
    with run.folder_lock:
        return _register(run)


def _register(run: Run) -> str:
    bench = run.need_bench("register")
    m = run.dep.municipality(bench.municipality)
    out = run.dep.broker_dir(m.id)
    password = run.dep.ensure_mqtt_password(bench.id)
    broker.set_password(out / "passwd", bench.id, password)
    broker.write_acl(out / "acl", m.id)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.now()))
    record = {
        "mac": run.facts.get("mac", ""),
        "chip": run.facts.get("chip", ""),
        "micropython": run.facts.get("micropython", ""),
        "app": run.facts.get("app", ""),
        "at": when,
    }
    run.dep.record_provisioned(bench.id, record)
    # Verify: what Mosquitto will read and what the inventory now says.
    users = broker.read_passwd(out / "passwd")
    if bench.id not in users or not broker.verify_password(password, users[bench.id]):
        raise StepError(
            "register",
            run.port,
            f"a valid hash for {bench.id} in {out / 'passwd'}",
            "none or a different password",
            "check the folder is writable, then run again",
        )
    if broker.bench_acl(m.id, bench.id) not in (out / "acl").read_text():
        raise StepError(
            "register",
            run.port,
            f"{bench.id}'s ACL lines in {out / 'acl'}",
            "missing",
            "check the folder is writable, then run again",
        )
    if run.dep.bench(bench.id).provisioned.get("at") != when:
        raise StepError(
            "register", run.port, "the inventory record", "not written", "check inventory.toml"
        )
    run.label = case_label(bench, m.name, record)
    missing = [k for k in ("mac", "micropython", "app") if not record[k]]
    note = f" (unknown: {', '.join(missing)})" if missing else ""
    return f"{bench.id} added to {out}{note}; copy it to the Pi (see its README.md)"


def case_label(bench: Bench, town: str, record: dict[str, Any]) -> str:
    return (
        f"{bench.id} | {town} | MAC {record['mac'] or '?'} | {record['chip'] or '?'} | "
        f"MicroPython {record['micropython'] or '?'} | app {record['app'] or '?'} | "
        f"{record['at'][:10]}"
    )
