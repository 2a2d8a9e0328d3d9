"""The provisioning steps. Each is a plain function of a `Run`, safe to repeat, and ends in a
verification; each failure is a `StepError` naming step, port, expected, seen, what to try."""

from __future__ import annotations

import calendar
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning import broker, esp, romfs
from provisioning.bundle import MANIFEST_NAME, BundleError, build_bundle
from provisioning.deployment import WIFI_PLACEHOLDER, Bench, Deployment, DeploymentError
from provisioning.device import Board, BoardError, dirs_of, parse_json_line, sync_files
from provisioning.errors import HINT_NO_REPL, StepError
from provisioning.firmware_image import FLASH_SIZES, flash_image, resolve_image

STEPS = ("detect", "micropython", "app", "selftest", "register")
STEP_HELP = {
    "detect": "chip type, MAC and flash size through the ROM bootloader",
    "micropython": "erase and write the pinned MicroPython image, verified (skipped when current)",
    "app": "upload the app bundle (changed files only), /config.json, /board.json, boot number",
    "selftest": "run the firmware's self-test on the board and show its report",
    "register": "MQTT password + ACL for the municipality's broker, inventory record, case label",
}
REPO = Path(__file__).resolve().parent.parent
EPOCH_2020 = calendar.timegm((2020, 1, 1, 0, 0, 0))
SELFTEST_MARK = "KLUPA-SELFTEST "
# A batch runs boards in threads; the deployment folder's files are written under this lock.
FOLDER_LOCK = threading.RLock()

Progress = Callable[[str, int, int], None]


@dataclass
class Run:
    """One board on one port, and what the steps learn about it."""

    dep: Deployment
    port: str
    bench: Bench | None = None
    firmware_dir: Path = REPO / "firmware"
    boards_dir: Path = REPO / "boards"
    progress: Progress | None = None
    force: bool = False
    probe_repl: bool = True
    bauds: tuple[int, ...] | None = None
    facts: dict[str, str] = field(default_factory=dict)
    now: Callable[[], float] = time.time
    selftest_report: dict[str, Any] | None = None
    label: str = ""

    def need_bench(self, step: str) -> Bench:
        if self.bench is None:
            raise StepError(step, self.port, "a bench id", "none given", "pass --bench ID")
        return self.bench

    def board(self, step: str, timeout: float = 10.0) -> Board:
        try:
            return Board(self.port, timeout=timeout)
        except BoardError as e:
            raise StepError(step, self.port, "a MicroPython REPL", str(e), HINT_NO_REPL) from None

    def tick(self, step: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            if self.progress is not None:
                self.progress(step, done, total)

        return report


def boot_start(now: float) -> int:
    """PROTOCOL.md: provisioning starts the boot number at minutes since 2020-01-01 UTC."""
    return int((now - EPOCH_2020) // 60)


# --------------------------------------------------------------------------- detect


def step_detect(run: Run) -> str:
    try:
        info = esp.read_chip(run.port)
    except esp.ESPTOOL_ERRORS as e:
        seen, hint = esp.explain(e)
        raise StepError("detect", run.port, "an ESP32 in its ROM bootloader", seen, hint) from None
    run.facts.update(chip=info.chip, mac=info.mac, flash_size=info.flash_size or "unknown")
    if run.bench is not None:
        _check_chip_matches_profile(run, info, "detect")
    return f"{info.description}, MAC {info.mac}, flash {info.flash_size or 'unknown'}"


def _profile(run: Run, step: str) -> dict[str, Any]:
    bench = run.need_bench(step)
    path = run.boards_dir / f"{bench.board}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StepError(
            step,
            run.port,
            f"board profile {path}",
            str(e),
            f"set `board` of [benches.{bench.id}] to a profile in {run.boards_dir}",
        ) from None
    if not isinstance(data, dict):
        raise StepError(step, run.port, f"a JSON object in {path}", type(data).__name__, "fix it")
    return data


def _check_chip_matches_profile(run: Run, info: esp.ChipInfo, step: str) -> None:
    profile = _profile(run, step)
    want = str(profile.get("chip", "")).lower().replace("-", "")
    if want and want != info.key:
        bench = run.need_bench(step)
        raise StepError(
            step,
            run.port,
            f"{want} (board profile {bench.board})",
            info.chip,
            f"plug in the {want} controller, or fix `board` of [benches.{bench.id}]",
        )
    need_mb = profile.get("flash_mb")
    have = FLASH_SIZES.get(info.flash_size or "", 0)
    if isinstance(need_mb, int) and have and have < need_mb << 20:
        raise StepError(
            step, run.port, f"{need_mb} MB flash", str(info.flash_size), "use the board's module"
        )


# --------------------------------------------------------------------------- micropython


def _running_micropython(run: Run) -> str | None:
    try:
        with Board(run.port, timeout=3.0) as board:
            return board.micropython_version()
    except BoardError:
        return None


def step_micropython(run: Run) -> str:
    pinned = str(run.dep.inventory.get("micropython", {}).get("version", ""))
    if not run.force and run.probe_repl:
        running = _running_micropython(run)
        if running and running == pinned:
            run.facts["micropython"] = running
            return f"MicroPython {running} already installed (use --force to reflash)"
    chip_key = run.facts.get("chip", "")
    if not chip_key:
        step_detect(run)
        chip_key = run.facts["chip"]
    key = chip_key.lower().replace("-", "")
    try:
        image = run.dep.firmware_image(key)
    except DeploymentError as e:
        raise StepError(
            "micropython", run.port, f"an image for {chip_key}", str(e), "add it"
        ) from None
    path = resolve_image(image, run.dep.cache_dir, run.port)  # checked before anything is erased

    def same_chip(info: esp.ChipInfo) -> None:
        if info.key != key:
            raise StepError(
                "micropython", run.port, chip_key, info.chip, "keep one board on the port per run"
            )

    result = flash_image(
        run.port,
        path.read_bytes(),
        image.offset,
        bauds=run.bauds or (921600, 460800, 230400, 115200),
        progress=run.tick("micropython"),
        chip_check=same_chip,
    )
    run.facts.update(
        chip=result.chip.chip,
        mac=result.chip.mac,
        flash_size=result.chip.flash_size or "unknown",
        micropython=image.version,
    )
    slower = f" (fell back from {result.failed_bauds[0][0]})" if result.failed_bauds else ""
    return (
        f"MicroPython {image.version} written at {result.baud} baud{slower}, "
        f"{result.size} bytes, verified"
    )


# --------------------------------------------------------------------------- app


def bench_config(run: Run, bench: Bench) -> dict[str, Any]:
    m = run.dep.municipality(bench.municipality)
    wifi_pw = run.dep.wifi_password(m.id)
    if wifi_pw == WIFI_PLACEHOLDER:
        raise StepError(
            "app",
            run.port,
            f"the Wi-Fi password for {m.id}",
            "the placeholder",
            f"set [wifi] {m.id} in {run.dep.secrets_path}",
        )
    return {
        "bench": bench.id,
        "municipality": m.id,
        "wifi": {"ssid": m.wifi_ssid, "password": wifi_pw},
        "mqtt": {
            "host": m.gateway_host,
            "port": m.mqtt_port,
            "tls": True,
            "user": bench.id,
            "password": run.dep.ensure_mqtt_password(bench.id),
            "ca": "/ca.crt",
        },
        "ntp": m.ntp_server,
        "boot": boot_start(run.now()),
        "ota_pub": run.dep.ota_anchor,
        "lat": bench.lat,
        "lon": bench.lon,
    }


def app_files(run: Run, boot: int | None = None) -> tuple[dict[str, bytes], str]:
    """Every file the app step puts on the board, by absolute path, and the app version.

    ``boot``: the boot number start already on the board (kept, so a re-run changes nothing).
    """
    bench = run.need_bench("app")
    with FOLDER_LOCK:
        try:
            bundle = build_bundle(
                run.firmware_dir, run.dep.build_dir / "bundle", run.dep.ota_signing_key
            )
        except BundleError as e:
            raise StepError("app", run.port, "an app bundle", str(e), "fix the firmware") from None
        files = bundle.contents()
        files["/board.json"] = json.dumps(_profile(run, "app")).encode()
        config = bench_config(run, bench)
        if boot:
            config["boot"] = boot
        files["/config.json"] = json.dumps(config).encode()
        files["/ca.crt"] = (run.dep.pki_dir / "ca.crt").read_bytes()
        files["/" + MANIFEST_NAME] = bundle.read(MANIFEST_NAME)  # last: marks a full upload
    return files, bundle.version


def step_app(run: Run) -> str:
    with run.board("app") as board:
        try:
            files, version = app_files(run, _boot_on_board(board, run.need_bench("app").id))
            old = board.read_text("/" + MANIFEST_NAME)
            stale: list[str] = []
            if old:
                try:
                    stale = ["/" + f["path"] for f in json.loads(old).get("files", [])]
                except (ValueError, AttributeError, TypeError):
                    stale = []
            rom_note, in_rom = _app_to_romfs(run, board, files)
            on_fs = {p: d for p, d in files.items() if p not in in_rom}
            # a copy of a package on the file system would come before /rom on sys.path
            copies = [p for p, h in board.hashes(sorted(in_rom)).items() if h is not None]
            stale = [p for p in stale if p not in in_rom] + copies
            result = sync_files(board, on_fs, run.tick("app"), stale=stale)
            board.remove_empty_dirs(dirs_of(list(in_rom)))  # an empty one shadows /rom too
            boot = json.loads(files["/config.json"])["boot"]
            run.facts.setdefault("micropython", board.micropython_version())
        except BoardError as e:
            raise StepError(
                "app",
                run.port,
                "every app file on the board with its SHA-256",
                str(e),
                "run the app step again (it resumes); " + HINT_NO_REPL,
            ) from None
        board.soft_reset()
    run.facts["app"] = version
    return (
        f"app {version}: {len(result.copied)} file(s) copied ({result.bytes_copied} bytes), "
        f"{len(result.unchanged)} unchanged, {len(result.removed)} removed, all hashes verified; "
        f"boot number {boot}{rom_note}"
    )


def _app_to_romfs(run: Run, board: Board, files: dict[str, bytes]) -> tuple[str, set[str]]:
    """Put the app's packages in the board's ROMFS partition when it has one they fit in.

    Returns a note for the step's summary and the paths now served from /rom.
    """
    part = romfs.query(board)
    if part is None:
        return "", set()
    packages = romfs.rom_files(files)
    image = romfs.build_image(packages)
    if len(image) > part.size:
        return (
            f"; the {len(image)}-byte ROMFS image exceeds the board's {part.size}-byte "
            "partition: packages on the file system",
            set(),
        )
    written = romfs.deploy(board, image, part, run.tick("app"))
    state = "written and verified" if written else "unchanged"
    return (
        f"; {len(packages)} package file(s) in ROMFS ({len(image)} of {part.size} bytes, {state})",
        set(packages),
    )


def _boot_on_board(board: Board, bench_id: str) -> int | None:
    """The boot number start in this bench's /config.json on the board, if any.

    PROTOCOL.md: provisioning starts the boot number at minutes since 2020; the firmware
    takes max(its last boot, config's start - 1) + 1, so a start is written once per flash.
    """
    # Parsed on the board so that only these two fields (no secret) cross the wire.
    try:
        found = board.eval(
            "(lambda j:(lambda c:(c.get('bench'),c.get('boot')) if isinstance(c,dict) else None)"
            "(j.load(open('/config.json'))))(__import__('json')) "
            "if 'config.json' in __import__('os').listdir('/') else None"
        )
    except BoardError:  # unreadable or not JSON: a new start, as after a reflash
        return None
    if isinstance(found, tuple) and found[0] == bench_id and isinstance(found[1], int):
        return int(found[1])
    return None


# --------------------------------------------------------------------------- selftest

# The firmware's board-level entry: bench.selftest.on_board() wires the drivers from
# /board.json and returns (summary, report) like bench.selftest.run().
SELFTEST_CODE = """\
import json
try:
 import bench.selftest as _t
 _f=_t.on_board
except (ImportError,AttributeError) as e:
 print('KLUPA-SELFTEST '+json.dumps({'missing':str(e)}))
else:
 _r=_f()
 if isinstance(_r,tuple):
  _r={'summary':_r[0],'report':_r[1]}
 print('KLUPA-SELFTEST '+json.dumps(_r))
"""


def failing_checks(report: Any) -> list[str]:
    """Names of the failed checks in a self-test report (dict of checks or list of them)."""
    bad: list[str] = []

    def visit(name: str, item: Any) -> None:
        if isinstance(item, dict):
            ok = item.get("ok")
            if ok is False and not {"sensors", "ports", "report"} & set(item):
                label = item.get("name") or (f"port{item['n']}" if "n" in item else name)
                bad.append(str(label))
                return
            for k, v in item.items():
                if isinstance(v, dict | list):
                    visit(str(k), v)
        elif isinstance(item, list):
            for i, v in enumerate(item):
                visit(f"{name}[{i}]", v)

    visit("selftest", report)
    return bad


def step_selftest(run: Run) -> str:
    with run.board("selftest", timeout=60.0) as board:
        try:
            out = board.exec(SELFTEST_CODE, timeout=120.0)
            report = parse_json_line(out, SELFTEST_MARK)
        except BoardError as e:
            raise StepError(
                "selftest",
                run.port,
                "a self-test report",
                str(e),
                "run the app step first, then the self-test again",
            ) from None
    if isinstance(report, dict) and "missing" in report:
        raise StepError(
            "selftest",
            run.port,
            "bench.selftest on the board",
            "self-test not in this firmware",
            "upload a firmware that has bench/selftest.py",
        )
    run.selftest_report = report if isinstance(report, dict) else {"report": report}
    bad = failing_checks(report)
    summary = str(report.get("summary", "")) if isinstance(report, dict) else ""
    if bad or (isinstance(report, dict) and report.get("ok") is False):
        raise StepError(
            "selftest",
            run.port,
            "every check passing",
            "failed: " + (", ".join(bad) if bad else summary or "see report"),
            "check the named sensor's wiring and I2C address against the board profile",
        )
    return summary or "all checks passed"


# --------------------------------------------------------------------------- register


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
    with FOLDER_LOCK:
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


STEP_FUNCTIONS: dict[str, Callable[[Run], str]] = {
    "detect": step_detect,
    "micropython": step_micropython,
    "app": step_app,
    "selftest": step_selftest,
    "register": step_register,
}


def run_steps(run: Run, steps: list[str], report: Callable[[str, str], None]) -> None:
    """Run ``steps`` in order; ``report(step, summary)`` after each. Raises StepError."""
    for name in steps:
        try:
            summary = STEP_FUNCTIONS[name](run)
        except StepError:
            raise
        except DeploymentError as e:
            raise StepError(
                name, run.port, "a consistent deployment folder", str(e), "fix it"
            ) from None
        except (OSError, ValueError) as e:
            raise StepError(
                name,
                run.port,
                "the step to finish",
                f"{type(e).__name__}: {e}",
                "run the step again; if it repeats, report it",
            ) from None
        report(name, summary)
