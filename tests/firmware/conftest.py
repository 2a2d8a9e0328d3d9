"""Firmware tests: the app's modules import as they do on the bench (`import bench.spool`)."""

import sys
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
# The unit tests' shared helpers (unit/scratch.py) import by their bare name, as in the VM,
# where the test folder is /tests on sys.path.
UNIT = Path(__file__).resolve().parent / "unit"
# rig.py (a virtual bench on a stepped clock) imports by its bare name too.
HERE = Path(__file__).resolve().parent
for _p in (FIRMWARE, UNIT, HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import asyncio  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402


class Gateway:
    """Stands in for the gateway: subscribes to a municipality, keeps every message, and
    (when ``receipts`` is on) publishes the retained Receipt of what it has stored."""

    def __init__(
        self,
        host: str,
        port: int,
        municipality: str = "mostar",
        receipts: bool = True,
        session: bool = False,
    ):
        """``session``: a persistent session (clean session off), as the real gateway keeps,
        so the broker queues the bench's messages for it while it is away."""
        import paho.mqtt.client as mqtt

        self.m = municipality
        self.messages: list[tuple[str, dict[str, Any] | None, bytes, bool]] = []
        self.lock = threading.Lock()
        self.receipts = receipts
        self.stored: dict[str, dict[int, set[int]]] = {}
        self.closed = False
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="gateway-" + municipality,
            clean_session=not session,
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(
            f"klupa/v1/{municipality}/#", 1
        )
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            body = json.loads(msg.payload) if msg.payload else None
        except ValueError:
            body = None
        with self.lock:
            self.messages.append((msg.topic, body, msg.payload, msg.retain))
        leaf = msg.topic.split("/", 4)[-1]
        if (
            self.receipts
            and isinstance(body, dict)
            and leaf in ("telemetry", "event", "vote", "cmd/ack")
        ):
            bench = body["bench"]
            self.stored.setdefault(bench, {}).setdefault(body["boot"], set()).add(body["seq"])
            self.send_receipt(bench)

    def send_receipt(self, bench: str) -> None:
        boots: dict[str, list[list[int]]] = {}
        for boot, seqs in self.stored.get(bench, {}).items():
            ranges: list[list[int]] = []
            for s in sorted(seqs):
                if ranges and ranges[-1][1] + 1 == s:
                    ranges[-1][1] = s
                else:
                    ranges.append([s, s])
            boots[str(boot)] = ranges[-32:]
        self.client.publish(
            f"klupa/v1/{self.m}/{bench}/receipt", json.dumps({"v": 1, "boots": boots}), 1, True
        )

    def of(self, leaf: str, bench: str = "mostar-01") -> list[dict[str, Any]]:
        topic = f"klupa/v1/{self.m}/{bench}/{leaf}"
        with self.lock:
            return [b for t, b, _, _ in self.messages if t == topic and b is not None]

    def command(self, bench: str, cmd: dict[str, Any]) -> None:
        self.client.publish(f"klupa/v1/{self.m}/{bench}/cmd", json.dumps(cmd), 1)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.client.loop_stop()
        self.client.disconnect()


def bench_config(port: int, bench: str = "mostar-01", **extra: Any) -> dict[str, Any]:
    from rig import base_config  # imported here: rig brings in the virtual bench

    return base_config(port, **{"bench": bench, "period": 10, "keepalive": 30, **extra})


def wait_until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or cond}")


class BenchRunner:
    """Runs virtual benches in a background asyncio loop so the test body stays synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.benches: list[Any] = []

    def start(self, vb: Any) -> Any:
        self.benches.append(vb)
        vb.future = asyncio.run_coroutine_threadsafe(vb.run(), self.loop)
        return vb

    def call(self, fn: Callable[[], Any]) -> Any:
        async def go() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(5)

    def close(self) -> None:
        if not self.thread.is_alive():
            return  # closed already
        for vb in self.benches:
            vb.stop()

        async def cancel_all() -> None:
            # Cancel until every task has ended: a task may be mid-way through a wait_for
            # that absorbs one cancellation (CPython 3.11), so cancel again while any is left.
            me = asyncio.current_task()
            for _ in range(50):
                tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
                if not tasks:
                    return
                for t in tasks:
                    t.cancel()
                await asyncio.wait(tasks, timeout=0.2)
            left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            raise RuntimeError(f"tasks that would not stop: {left}")

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture
def bench_runner() -> Iterator[BenchRunner]:
    r = BenchRunner()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def gateway(mosquitto: Any) -> Iterator[Callable[..., Gateway]]:
    """Opens a Gateway on the test's broker (``gateway(**options)``); each one opened is closed
    when the test ends (a test may close one earlier, to take the gateway away)."""
    opened: list[Gateway] = []

    def open_gateway(**options: Any) -> Gateway:
        opened.append(Gateway(mosquitto.host, mosquitto.port, **options))
        return opened[-1]

    try:
        yield open_gateway
    finally:
        for gw in opened:
            gw.close()


@pytest.fixture
def firmware_kit() -> dict[str, Any]:
    """Helpers for host integration tests (fixtures, since test files cannot import siblings)."""
    return {"Gateway": Gateway, "bench_config": bench_config, "wait_until": wait_until}
