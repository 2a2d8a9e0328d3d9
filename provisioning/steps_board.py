"""The steps that ask the board what it is: `detect` (the chip through the ROM bootloader, the
heap through MicroPython), `micropython` (the pinned image, written and verified) and `selftest`
(the heap again, then the firmware's own self-test); and the board profile a bench names."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from provisioning import esp, heap, romfs
from provisioning.deployment import DeploymentError
from provisioning.device import Board, BoardError, parse_json_line
from provisioning.errors import StepError
from provisioning.firmware_image import FLASH_SIZES, flash_image, resolve_image

if TYPE_CHECKING:
    from provisioning.steps import Run

SELFTEST_MARK = "KLUPA-SELFTEST "


# --------------------------------------------------------------------------- detect


def step_detect(run: Run) -> str:
    """The chip through the ROM bootloader and, when MicroPython answers on the port first,
    the heap the board offers (a board without PSRAM is refused: `provisioning.heap`)."""
    heap_line = None
    if run.probe_repl:
        try:
            with Board(run.port, timeout=3.0) as board:
                heap_line = _judge_heap(run, "detect", board)
        except BoardError:
            heap_line = None  # a blank board: the ROM bootloader alone answers
    try:
        info = _read_rom(run)
    except StepError as e:
        if heap_line is None:
            raise
        return f"{heap_line}; chip not read: the ROM bootloader did not answer ({e.seen})"
    rom = f"{info.description}, MAC {info.mac}, flash {info.flash_size or 'unknown'}"
    return f"{rom}; {heap_line or 'heap: read once MicroPython runs (`selftest`)'}"


def _read_rom(run: Run) -> esp.ChipInfo:
    try:
        info = esp.read_chip(run.port)
    except esp.ESPTOOL_ERRORS as e:
        seen, hint = esp.explain(e)
        raise StepError("detect", run.port, "an ESP32 in its ROM bootloader", seen, hint) from None
    run.facts.update(chip=info.chip, mac=info.mac, flash_size=info.flash_size or "unknown")
    if run.bench is not None:
        _check_chip_matches_profile(run, info, "detect")
    return info


def _judge_heap(run: Run, step: str, board: Board) -> str:
    """The board's heap in one line; StepError when it may not run a bench."""
    found = heap.read_heap(board)
    partition = romfs.query(board)
    if run.bench is not None:
        chip = str(board_profile(run, step).get("chip", "")).lower().replace("-", "")
    elif run.facts.get("chip"):
        chip = run.facts["chip"].lower().replace("-", "")
    else:
        chip = heap.chip_of(found.machine)
    try:
        image = run.dep.firmware_image(chip)
    except DeploymentError:
        image = None
    try:
        verdict = heap.judge(found, chip, image, partition)
    except heap.HeapRefused as e:
        raise StepError(step, run.port, e.expected, e.seen, e.hint) from None
    run.facts["heap_kib"] = str(found.total // 1024)
    return verdict


def board_profile(run: Run, step: str) -> dict[str, Any]:
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
    profile = board_profile(run, step)
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
        _read_rom(run)
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
            heap_line = _judge_heap(run, "selftest", board)
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
    return f"{summary or 'all checks passed'}; {heap_line}"
