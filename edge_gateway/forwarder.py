"""The sinks in a process of their own, so that forwarding never competes for the ingest's GIL.

The gateway process stores and acknowledges; the forwarder process reads the same SQLite store
(WAL: readers never block the writer) past each sink's watermark and sends. Each sink still
runs as its own thread there, so one receiver down never stalls another.

The forwarder is ``python -m edge_gateway.forwarder``, started by the gateway with two pipes:

- its stdin, gateway -> forwarder: first the configuration (one pickled frame), then ``w``
  after each group commit, so rows go out at once (written without blocking: when the pipe is
  full a wake-up is pending anyway), and ``s`` with a deadline: stop, flush until the deadline,
  exit. End of file means the gateway process is gone. A pipe, not a shared lock: a gateway
  SIGKILLed while holding a lock would leave it held for ever.
- its stdout, forwarder -> gateway: JSON lines, each sink's state whenever it changes and every
  log record, which the gateway logs with its own handler (one log, secrets redacted there).

The forwarder runs at a lower CPU priority: when the machine is busy, storing and
acknowledging come first (until then the broker holds the messages), forwarding can wait.
It exits by itself when the gateway process is gone (SIGKILL): the next gateway starts a new
one, and whatever was sent since the last saved watermark is sent again, which every sink's
receiver takes idempotently. It ignores SIGINT and SIGTERM, which a terminal or systemd also
sends it: the gateway decides when it stops, after its own last commit, and tells it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from edge_gateway.config import Config
from edge_gateway.sinks.registry import SINKS

if TYPE_CHECKING:
    from edge_gateway.sinks.base import Sink

log = logging.getLogger("edge_gateway.forwarder")

NICE = 5  # below the ingest when the CPU is contended
REPORT_S = 0.1  # how often the forwarder looks for changed sink state
RESTART_DELAY_S = 1.0
_STOP = struct.Struct("<d")


def sink_names(cfg: Config) -> list[str]:
    """The configured sinks, in the registry's order."""
    return [kind.name for kind in SINKS if kind.name in cfg.sinks]


@dataclass
class SinkView:
    """The gateway's view of one sink in the forwarder, as last reported."""

    name: str
    watermark: int = 0
    sent: int = 0
    failures: int = 0
    last_error: str = ""

    def info(self) -> dict[str, Any]:
        return {"sink": self.name, "watermark": self.watermark, "sent": self.sent}


class Forwarder:
    """Starts, watches (and restarts) and stops the forwarder process."""

    def __init__(self, cfg: Config, options: dict[str, dict[str, Any]] | None = None) -> None:
        self.cfg = cfg
        # Attributes set on each sink once it is built, by sink name (used by tests).
        self.options = options if options is not None else {}
        self.views = [SinkView(n) for n in sink_names(cfg)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None
        self.closing = False
        self.restarts = 0
        self.spawned_at = 0.0

    def start(self) -> None:
        if self.views:
            self._spawn()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "edge_gateway.forwarder"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        frame = pickle.dumps((self.cfg, self.options))
        self.proc.stdin.write(struct.pack("<I", len(frame)) + frame)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.reader = threading.Thread(
            target=self._read,
            args=(io.BufferedReader(self.proc.stdout),),  # type: ignore[arg-type]
            name="forwarder-reports",
            daemon=True,
        )
        self.reader.start()
        self.spawned_at = time.monotonic()

    def wake(self) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        try:
            self.proc.stdin.write(b"w")
        except (BlockingIOError, BrokenPipeError, ValueError):
            pass  # a wake-up is pending already, or the forwarder ended and is started again

    def check(self) -> None:
        """Called from the gateway's housekeeping: a forwarder that died is started again."""
        if self.closing or self.proc is None or self.proc.poll() is None:
            return
        if time.monotonic() - self.spawned_at < RESTART_DELAY_S:
            return  # one that dies at once is not started again in a tight loop
        self.restarts += 1
        log.warning(
            "the forwarder process ended (exit status %s); starting it again", self.proc.returncode
        )
        self._close_pipes()
        self._spawn()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            try:
                line = stream.readline()
            except (OSError, ValueError):
                return  # the pipe was closed under us: that forwarder has ended
            if not line:
                return
            self._report(line)

    def _report(self, line: bytes) -> None:
        try:
            kind, item = json.loads(line)
        except ValueError:
            log.warning("forwarder: %s", line[:200].decode("utf-8", "replace").rstrip())
            return
        if kind == "log":
            name, level, text = item
            logger = logging.getLogger(name)
            if logger.isEnabledFor(level):
                fields = {"name": name, "levelno": level, "msg": text}
                fields["levelname"] = logging.getLevelName(level)
                logger.handle(logging.makeLogRecord(fields))
        elif kind == "state":
            for v in self.views:
                if v.name == item["sink"]:
                    v.watermark, v.sent = item["watermark"], item["sent"]
                    v.failures, v.last_error = item["failures"], item["last_error"]

    def stop(self, deadline: float) -> None:
        """Ask the forwarder to flush until ``deadline`` (wall clock) and exit; wait for it."""
        self.closing = True
        if self.proc is None or self.proc.stdin is None:
            return
        message = b"s" + _STOP.pack(deadline)
        while message and time.time() < deadline:
            try:
                n = self.proc.stdin.write(message)
            except (BrokenPipeError, ValueError):
                break  # it has ended already
            if n is None:  # the pipe is full: a forwarder that does not read, or not yet
                time.sleep(0.05)
            else:
                message = message[n:]
        try:
            self.proc.wait(timeout=max(0.5, deadline - time.time() + 5))
        except subprocess.TimeoutExpired:
            log.warning("the forwarder did not stop in time; ending it")
            self.proc.kill()
            self.proc.wait(5)
        if self.reader is not None:
            self.reader.join(timeout=2)
        self._close_pipes()

    def _close_pipes(self) -> None:
        assert self.proc is not None
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


# --------------------------------------------------------------------------- the process


class _ToGateway(logging.Handler):
    """Log records of the forwarder, sent to the gateway to be logged there."""

    def __init__(self, send: Any) -> None:
        super().__init__()
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.send(["log", [record.name, record.levelno, text]])
        except Exception:  # noqa: BLE001 - logging must never take the forwarder down
            self.handleError(record)


def _read_exact(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _sender(out: IO[bytes]) -> Callable[[Any], None]:
    """Writes one JSON line to the gateway; exits when the gateway is gone."""
    lock = threading.Lock()

    def send(item: Any) -> None:
        line = json.dumps(item, separators=(",", ":")).encode() + b"\n"
        with lock:
            try:
                out.write(line)
                out.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the gateway is gone

    return send


def _start_sinks(cfg: Config, options: dict[str, dict[str, Any]]) -> list[Sink]:
    names = sink_names(cfg)
    sinks = [
        kind.build(cfg.spool.path, cfg.municipality, cfg.sinks[kind.name], names)
        for kind in SINKS
        if kind.name in cfg.sinks
    ]
    for s in sinks:
        for key, value in options.get(s.name, {}).items():
            setattr(s, key, value)
        s.start()
    return sinks


class _Reports:
    """Each sink's state, sent to the gateway when it changed (or when forced)."""

    def __init__(self, sinks: list[Sink], send: Callable[[Any], None]) -> None:
        self.sinks = sinks
        self.send = send
        self.last: dict[str, tuple[int, int, int, str]] = {}

    def __call__(self, force: bool = False) -> None:
        for s in self.sinks:
            state = (s.watermark, s.sent, s.failures, s.last_error)
            if force or state != self.last.get(s.name):
                self.last[s.name] = state
                self.send(
                    [
                        "state",
                        {
                            "sink": s.name,
                            "watermark": s.watermark,
                            "sent": s.sent,
                            "failures": s.failures,
                            "last_error": s.last_error,
                        },
                    ]
                )


def _until_stop(inp: int, sinks: list[Sink], report: _Reports) -> float:
    """Wake the sinks at each ``w`` and report; the deadline the ``s`` message carries."""
    deadline = 0.0
    pending = b""
    while not deadline:
        ready, _, _ = select.select([inp], [], [], REPORT_S)
        if ready:
            data = os.read(inp, 4096)
            if not data:
                # The gateway is gone without a word: stop as a crash would, at once.
                os._exit(0)
            pending += data
            stop = pending.find(b"s")  # only wake-ups (w) come before it
            if stop >= 0:
                try:
                    pending += _read_exact(inp, max(0, stop + 1 + _STOP.size - len(pending)))
                except EOFError:
                    os._exit(0)
                (deadline,) = _STOP.unpack(pending[stop + 1 : stop + 1 + _STOP.size])
            pending = b""
            for s in sinks:
                s.wake.set()
        report()
    return float(deadline)


def main() -> None:
    """The forwarder process: run every sink until told to stop or the gateway is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.nice(NICE)
    except OSError:
        pass
    inp = sys.stdin.fileno()
    send = _sender(sys.stdout.buffer)
    sys.stdout = sys.stderr  # stray prints must not corrupt the report stream
    try:
        (size,) = struct.unpack("<I", _read_exact(inp, 4))
        cfg, options = pickle.loads(_read_exact(inp, size))
    except EOFError:
        return
    root = logging.getLogger()
    root.handlers[:] = [_ToGateway(send)]
    root.setLevel(logging.DEBUG)
    for noisy in ("urllib3", "influxdb_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sinks = _start_sinks(cfg, options)
    report = _Reports(sinks, send)
    report(force=True)
    deadline = _until_stop(inp, sinks, report)
    for s in sinks:
        s.stop()
    for s in sinks:
        s.join(timeout=max(0.1, deadline - time.time()))
        s.flush(deadline)
    report(force=True)
    for s in sinks:
        s.close()


if __name__ == "__main__":
    main()
