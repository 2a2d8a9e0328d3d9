"""The bench core's heap over 24 simulated hours in the MicroPython VM (issue 3).

Runs ``benchmarks/vm/core_day.py`` inside the npm MicroPython WebAssembly port through
``testkit.vm.run_script`` (no runner or unittest loaded), with the firmware as the bench runs it: compiled to
``.mpy`` by ``provisioning.bundle.build_bundle`` (mpy-cross, as ``klupa bundle`` does) and
copied to the VM's ``/``; the GC heap starts at 56 KiB like a plain ESP32's.

Included: the modules App.start() makes resident on a healthy bench without its front
(bench.app and its imports, bench.link, bench.mqtt, bench.power/session/window, the sensor
drivers), ``bench.startup.load()`` validating ``/board.json`` (boards/bench-v1.json) and
``/config.json`` with bench.config (both imported and dropped as at boot), the real spool on
the VM's in-memory file system (its recovery in bench.spoolmaint, dropped likewise), and then
86,400 one-second ``App.sample`` calls, ``App.close_window`` every window (period from
``App.period_s()``), the telemetry packed, spooled, encoded to JSON by the link and published
by ``bench.mqtt.Client`` to a loopback byte sink; the broker's PUBACKs and the gateway's
Receipt are fed back as MQTT packets decoded by ``bench.mqtt.parse`` and handled by the link,
so the spool releases what was receipted.

Not included: no Wi-Fi, socket, TLS or broker (the client writes to a byte counter; the link
supervisor, keepalive and reader tasks do not run), no I2C sensor chips or their drivers'
register traffic (stand-in sensors answer ``bus_mv()``/``current_ma()`` with a scripted clear
day, defined in ``benchmarks/vm/vmapp.py``; the seat and Wi-Fi-statistics drivers run on
stand-in pins and WLAN objects), no touch pads, voting or display (``benchmarks/vm_ui.py``),
no watchdog/supervisor task, no ESP-IDF, lwIP or mbedTLS memory (outside the GC heap).

How the heap is attributed (``vmkit.measure``). The VM runs the script alone (no unittest, no
test runner: ``testkit.vm.run_script``). The baseline is taken with only ``vmkit``
loaded: heap sampling and stand-ins for the hardware modules an ESP32 has in ROM, none of
which names a part of the app, so every name the app interns is charged to it. The app's
modules are imported and measured; then the harness that builds and drives the app
(``vmapp``, ``dayrun``) is imported and its cost, measured on the spot, is subtracted from
every later figure. ``binascii`` is a C module on the ESP32; this port has it as frozen
Python (3 KiB of tables, 45 interned one-character names), so ``benchmarks/vm/binascii.py``
stands in with the same CRC-32 and is loaded before the baseline. Before 2026-11-27 the day
ran under the unittest runner with the harness loaded before the baseline (it interned about
60 of the app's names, which were then not charged) and with this port's ``binascii`` charged
to the app; ``benchmarks/README.md`` gives both.

Heap sampling follows ``testkit/vm.py``: ``gc.threshold(4096)``; this port collects only
when control returns to JavaScript, so the live heap is sampled right after a collection at
the end of every window, and the most bytes allocated within one window's synchronous stretch
(garbage included) is reported as the upper bound of the transient peak.

    .venv/bin/python benchmarks/vm_core.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from provisioning.bundle import build_bundle  # noqa: E402
from testkit.vm import FIRMWARE_DIR, VmUnavailable, run_script  # noqa: E402

VM_DIR = Path(__file__).resolve().parent / "vm"
BOARD = ROOT / "boards" / "bench-v1.json"


def bundle_key() -> Any:
    """A throwaway OTA signing key: the manifest's signature is not looked at here."""
    from provisioning import signing

    return signing.generate()


TARGET_HIGH = 40 * 1024
TARGET_DRIFT = 1024

CORE = (
    "bench/app.mpy",
    "bench/protocol.mpy",
    "bench/runtime.mpy",
    "bench/store.mpy",
    "bench/spool.mpy",
    "bench/power.mpy",
    "bench/session.mpy",
    "bench/window.mpy",
    "bench/link.mpy",
    "bench/mqtt.mpy",
    "drivers/ina226.mpy",
    "drivers/ina3221.mpy",
    "drivers/bme280.mpy",
    "drivers/seat.mpy",
    "drivers/wifi.mpy",
)
FRONT = (
    "bench/front.mpy",
    "bench/screens.mpy",
    "bench/font.mpy",
    "bench/fontdata.mpy",
    "bench/touch.mpy",
    "bench/voting.mpy",
    "drivers/ssd1306.mpy",
)
ON_DEMAND = (
    "bench/startup.mpy",
    "bench/config.mpy",
    "bench/commands.mpy",
    "bench/connect.mpy",
    "bench/doze.mpy",
    "bench/spoolmaint.mpy",
    "bench/pollcheck.mpy",
    "bench/selftest.mpy",
    "bench/service.mpy",
    "bench/ota.mpy",
    "bench/http.mpy",
    "bench/romfs.mpy",
    "bench/trust.mpy",
)


def build(out: Path, key: Any = None) -> Path:
    """The firmware bundle (``.mpy``) in ``out``, as ``klupa bundle`` builds it (signed with
    ``key``, a throwaway one by default)."""
    return build_bundle(FIRMWARE_DIR, out / "bundle", key or bundle_key()).dir


def mpy_sizes(bundle: Path) -> dict[str, int]:
    return {p.relative_to(bundle).as_posix(): p.stat().st_size for p in bundle.rglob("*.mpy")}


def size_of(sizes: dict[str, int], names: tuple[str, ...]) -> int:
    return sum(sizes.get(n, 0) for n in names)


def run_vm(script: str, bundle: Path, marker: str, timeout: float) -> dict[str, object]:
    """Run one in-VM benchmark script (its ``main()``, no runner or unittest loaded) on the
    bundle; return its result line's JSON."""
    result = run_script(
        VM_DIR / script,
        [(bundle, "/"), (BOARD, "/boards")],
        firmware=False,
        timeout=timeout,
    )
    if not result.ok:
        raise SystemExit(result.error + "\n" + result.output[-3000:])
    lines = result.output.splitlines()
    for line in lines:
        if line.startswith(marker):
            data = json.loads(line[len(marker) :])
            assert isinstance(data, dict)
            data["names"] = name_pools(lines)
            return data
    raise SystemExit(f"no {marker!r} line in the VM's output:\n{result.output[-3000:]}")


def run_on_bundle(
    script: str,
    marker: str,
    prefix: str,
    key: Any = None,
    prepare: Callable[[Path], object] | None = None,
) -> tuple[dict[str, int], dict[str, object]]:
    """Build the bundle (signed with ``key``) in a temporary folder named ``prefix``…, let
    ``prepare(bundle)`` add to it, and run the in-VM ``script`` on it: (the bundle's ``.mpy``
    sizes, the result line's JSON). Without the VM: says why and exits with status 2."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        bundle = build(Path(tmp), key)
        if prepare is not None:
            prepare(bundle)
        try:
            return mpy_sizes(bundle), run_vm(script, bundle, marker, timeout=1800)
        except VmUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None


def name_pools(lines: list[str]) -> dict[str, tuple[int, int]]:
    """``vmkit.names(label)`` reports: label -> (interned names, bytes of the name pool)."""
    out: dict[str, tuple[int, int]] = {}
    for i, line in enumerate(lines[:-1]):
        nxt = lines[i + 1]
        if line.startswith("@@names ") and nxt.startswith("qstr pool:"):
            fields = dict(p.split("=") for p in nxt.replace(",", " ").split() if "=" in p)
            out[line[len("@@names ") :]] = (int(fields["n_qstr"]), int(fields["n_total_bytes"]))
    return out


def app_names(pools: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """The app's interned names and their bytes: all new ones, less the harness's own
    (interned between the "harness0" and "harness1" reports)."""
    (n0, b0), (nh0, bh0) = pools["start"], pools["harness0"]
    (nh1, bh1), (n2, b2) = pools["harness1"], pools["end"]
    return (nh0 - n0) + (n2 - nh1), (bh0 - b0) + (b2 - bh1)


# This port's pools of interned names: 24 names in the first, then pools of 40, 80, 160, 320,
# 640, ... entries (each twice the last), so a new pool is allocated when the total passes
# 64, 144, 304, 624, 1264 (measured on this port, benchmarks/README.md).
def next_pool(total: int) -> tuple[int, int]:
    """(total at which the next pool is allocated, its entries) for ``total`` names."""
    at, size = 64, 80
    while at < total:
        at, size = at + size, size * 2
    return at, size


def kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


def main() -> int:
    sizes, r = run_on_bundle("core_day.py", "@@vm-core ", "klupa-vm-core-")
    start = int(str(r["start"]))
    harness = int(str(r["harness"]))
    after = start + harness  # figures taken once the harness is loaded include it
    code = int(str(r["core"])) - start
    built = int(str(r["built"])) - after
    high = int(str(r["high"])) - after
    hour1 = int(str(r["hour1"])) - after
    hour24 = int(str(r["hour24"])) - after
    burst = int(str(r["burst"]))
    total = sum(sizes.values())
    core = size_of(sizes, CORE)
    print("MicroPython VM (npm WebAssembly port 1.27, 56 KiB initial GC heap), firmware as .mpy")
    print(
        "included: startup.load, App.sample/close_window, spool (in-memory FS), telemetry JSON, "
        "bench.mqtt.Client to a loopback byte sink, PUBACK + Receipt fed back"
    )
    print(
        "not included: Wi-Fi, sockets, TLS, broker, link/keepalive/reader tasks, I2C chips "
        "(stand-in sensors), touch/voting/display, ESP-IDF/lwIP/mbedTLS memory"
    )
    print(f"bytecode (.mpy) of the whole firmware: {total} B in {len(sizes)} files")
    print(
        f"  resident core set: {core} B; front (issue 4): {size_of(sizes, FRONT)} B; "
        f"on demand (startup, config, commands, connect, doze, spoolmaint, pollcheck, "
        f"selftest, service, ota): "
        f"{size_of(sizes, ON_DEMAND)} B"
    )
    print(f"VM heap before the app (vmkit, binascii stand-in): {kib(start)} (baseline)")
    print(f"core modules imported from .mpy, live: {kib(code)} ({code} B)")
    pools = r["names"]
    assert isinstance(pools, dict)
    (n0, b0), (n1, b1) = pools["start"], pools["core"]
    print(
        f"  of which interned names (micropython.qstr_info): {n1 - n0} names, "
        f"{kib(b1 - b0)} ({b1 - b0} B) of name pool and strings"
    )
    print(
        f"harness (vmapp, dayrun) imported after the core, subtracted from what follows: "
        f"{kib(harness)}"
    )
    n_app, b_app = app_names(pools)
    total = pools["end"][0]
    at, size = next_pool(total)
    print(
        f"  interned names of the app at the end of the day: {n_app} names, {kib(b_app)}; "
        f"all names in the VM: {total} (the next pool, {size} entries, comes at {at})"
    )
    print(f"app built (board, config, spool, link, window, power), live: {kib(built)}")
    print(
        f"{r['windows']} windows, {r['records']} records, {r['published']} published, "
        f"{r['wire_bytes']} B to the sink in {r['wire_packets']} packets, "
        f"spool {r['spool_used']} B in use at the end, power {r['power']}"
    )
    print(
        f"high-water of the live heap over 24 h (after collections): {kib(high)} ({high} B, "
        f"target <= 40 KiB: {'met' if high <= TARGET_HIGH else 'NOT met'}); "
        f"of the core modules' bytecode: {high / code:.2f}x"
    )
    print(
        f"most allocated within one window between collections (garbage included): "
        f"{kib(burst)}; live + that: {kib(high + burst)}"
    )
    drift = hour24 - hour1
    print(
        f"live heap after gc.collect: hour 1 {kib(hour1)} ({hour1} B), hour 24 {kib(hour24)} "
        f"({hour24} B), drift {drift:+d} B (target within 1 KiB: "
        f"{'met' if abs(drift) <= TARGET_DRIFT else 'NOT met'})"
    )
    print(f"VM time for the simulated day: {int(str(r['elapsed_us'])) / 1e6:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
