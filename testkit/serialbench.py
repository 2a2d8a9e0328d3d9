"""A bench reached only through its serial port (and the broker it publishes to).

Two halves, one per side of the USB cable:

- :class:`SerialConsole` is the tests' end: a port opened with pyserial (``/dev/ttyUSB0`` of a
  real bench, or the pseudo-terminal of a virtual one), every byte the bench prints captured
  (``.text()``, and a log file), and what a technician's laptop can do on that line: a
  hardware reset (:meth:`~SerialConsole.hard_reset`: RTS on EN as esptool does; a
  pseudo-terminal has no modem lines, so there the reset is :data:`RESET_LINE`, which the
  virtual bench's "USB bridge" takes as the pulse on EN), Ctrl-C to the REPL
  (:meth:`~SerialConsole.interrupt`), a line at the REPL and a raw-REPL exec.
- ``python -m testkit.serialbench --root FLASH ...`` is a virtual bench in a process of its
  own (:class:`VirtualSerialBench` starts it): the unchanged firmware on the virtual board
  (``boards.virtual.bench.VirtualBench``), its console on a pseudo-terminal whose path it
  prints first. It behaves on that line as an ESP32 with this firmware does: the app's output;
  Ctrl-C stops the app (``main.run``) and gives MicroPython's REPL, friendly and raw (Ctrl-A,
  Ctrl-B, Ctrl-D, raw-paste refused as the npm port refuses it), whose ``machine`` is the
  board's; the watchdog the app started keeps running at the REPL and resets the bench;
  ``machine.reset()`` is a hard reset; a soft reset (Ctrl-D) starts the app again;
  :data:`RESET_LINE` is a reset on EN (cause ``power_on``).

Its clock may run faster than real time from a start in the past (``--speed``,
``--start-ago``) until it reaches now, as ``klupa sim --catch-up`` does: that is the virtual
bench's nature, not a way to drive it, and it lets a scenario's minutes pass in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import tty
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESET_LINE = b"\x1b]klupa;reset-en\x07"  # the virtual bridge's pulse on EN (no RTS on a pty)
BANNER = b"MicroPython (klupa virtual bench) on the virtual board with ESP32\r\n"
PROMPT = b">>> "
RAW_ENTER = b"raw REPL; CTRL-B to exit\r\n>"
CAUSES = {1: "POWERON_RESET", 2: "SW_CPU_RESET", 3: "TG1WDT_SYS_RESET", 4: "DEEPSLEEP_RESET"}


# --------------------------------------------------------------------------- the tests' end


class SerialConsole:
    """A bench's serial port, its output captured from the moment it is opened."""

    def __init__(self, port: str, log: Path | None = None, baud: int = 115200) -> None:
        import serial

        self.port = port
        self.log = log
        self.output = bytearray()
        self.lock = threading.Lock()
        self.serial = serial.Serial(port, baud, timeout=0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="serial-console", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        sink = self.log.open("ab") if self.log is not None else None
        try:
            while not self._stop.is_set():
                try:
                    data = self.serial.read(4096)
                except Exception:  # noqa: BLE001 - the port went away (a bench unplugged)
                    time.sleep(0.05)
                    continue
                if data:
                    with self.lock:
                        self.output += data
                    if sink is not None:
                        sink.write(data)
                        sink.flush()
        finally:
            if sink is not None:
                sink.close()

    # -- reading
    def mark(self) -> int:
        with self.lock:
            return len(self.output)

    def since(self, mark: int) -> bytes:
        with self.lock:
            return bytes(self.output[mark:])

    def text(self) -> str:
        with self.lock:
            return self.output.decode("utf-8", "replace").replace("\r\n", "\n")

    def wait_for(self, marker: bytes, timeout: float, since: int = 0) -> bytes:
        """The output from ``since`` up to and including ``marker``; TimeoutError naming it."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.since(since)
            at = seen.find(marker)
            if at >= 0:
                return seen[: at + len(marker)]
            if time.monotonic() > deadline:
                tail = seen[-300:].decode("utf-8", "replace")
                raise TimeoutError(f"{self.port} did not print {marker!r} in {timeout} s: {tail!r}")
            time.sleep(0.02)

    # -- what a laptop on the cable can do
    def write(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    @property
    def virtual(self) -> bool:
        """A pseudo-terminal (the virtual bench), which has no DTR/RTS lines."""
        return self.port.startswith("/dev/pts/")

    def hard_reset(self) -> None:
        """Reset the chip on EN, as esptool's hard reset does (RTS high pulls EN low through
        the board's auto-reset transistors, DTR low keeps IO0 high: the app boots)."""
        if self.virtual:
            self.write(RESET_LINE)
            return
        self.serial.dtr = False
        self.serial.rts = True
        time.sleep(0.1)
        self.serial.rts = False

    def interrupt(self, timeout: float = 10.0) -> None:
        """Ctrl-C until the REPL's prompt: the app stops (its watchdog keeps running)."""
        deadline = time.monotonic() + timeout
        while True:
            mark = self.mark()
            self.write(b"\r\x03")
            try:
                self.wait_for(PROMPT, 1.0, mark)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def repl(self, line: str, timeout: float = 10.0, prompt: bool = True) -> str:
        """Type ``line`` at the friendly REPL; what it printed (after the echo)."""
        mark = self.mark()
        self.write(line.encode() + b"\r")
        if not prompt:
            return ""
        out = self.wait_for(b"\r\n" + PROMPT, timeout, mark)
        text = out.decode("utf-8", "replace")
        return text.split("\r\n", 1)[1].rsplit("\r\n", 1)[0] if "\r\n" in text else ""

    def exec_raw(self, code: str, timeout: float = 10.0) -> str:
        """Run ``code`` in the raw REPL (as mpremote does) from the friendly REPL; its
        stdout. RuntimeError with the board's traceback if it raised."""
        mark = self.mark()
        self.write(b"\r\x01")
        self.wait_for(RAW_ENTER, timeout, mark)
        mark = self.mark()
        self.write(code.encode() + b"\x04")
        out = self.wait_for(b"\x04>", timeout, mark)
        mark2 = self.mark()
        self.write(b"\x02")
        self.wait_for(PROMPT, timeout, mark2)
        body = out[out.find(b"OK") + 2 : -2]
        stdout, _, err = body.partition(b"\x04")
        if err.strip():
            raise RuntimeError(err.decode("utf-8", "replace"))
        return stdout.decode("utf-8", "replace")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(Exception):
            self.serial.close()


@dataclass(eq=False)
class VirtualSerialBench:
    """``python -m testkit.serialbench`` for one flash folder: start it, read its port."""

    root: Path
    profile: str = "bench-v1"
    speed: float = 1.0
    start_ago: float = 0.0
    # Where its stderr goes: ``log``, or ``<root>.bench.log`` beside the flash folder.
    log: InitVar[Path | None] = None
    log_file: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    port: str = field(default="", init=False)

    def __post_init__(self, log: Path | None) -> None:
        self.log_file = log or self.root.with_name(self.root.name + ".bench.log")

    def start(self, timeout: float = 30.0) -> str:
        argv = [sys.executable, "-P", "-m", "testkit.serialbench", "--root", str(self.root)]
        argv += ["--profile", self.profile, "--speed", str(self.speed)]
        argv += ["--start-ago", str(self.start_ago)]
        paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()  # its pty's path, first thing
        if not line.startswith("/dev/"):
            self.stop()
            raise RuntimeError(f"the virtual bench did not start; see {self.log_file}")
        self.port = line
        return line

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


# --------------------------------------------------------------------------- the bench's end


class Uart:
    """The pty's master side as the ESP32's UART0: output that never blocks the bench (bytes
    nobody reads are dropped, as a UART drops them), input handed to the console."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.pending = b""

    def write(self, data: bytes) -> None:
        self.pending = (self.pending + data)[-(1 << 20) :]
        try:
            n = os.write(self.master, self.pending)
            self.pending = self.pending[n:]
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: no one has the port open
                raise


class ConsoleText:
    """``sys.stdout``/``sys.stderr`` of the bench: text to the UART, newlines as CR LF."""

    def __init__(self, uart: Uart, copy: Any = None) -> None:
        self.uart = uart
        self.copy = copy  # the process's own stderr (a log file), for diagnostics

    def write(self, text: str) -> int:
        self.uart.write(text.replace("\n", "\r\n").encode("utf-8", "replace"))
        if self.copy is not None:
            self.copy.write(text)
            self.copy.flush()
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class Board:
    """The ESP32 on the far side of the pty: the app (``VirtualBench``) or the REPL."""

    def __init__(self, vb: Any, uart: Uart) -> None:
        self.vb = vb
        self.uart = uart
        self.mode = "app"  # app, repl, raw
        self.line = b""
        self.raw = b""
        self.events: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.namespace: dict[str, Any] = {}
        self.stopping = False

    # -- input from the cable
    def feed(self, data: bytes) -> None:
        while RESET_LINE in data:
            before, _, data = data.partition(RESET_LINE)
            self._bytes(before)
            self.events.put_nowait(("reset", 1))  # EN: machine.PWRON_RESET
            self.line = self.raw = b""
        self._bytes(data)

    def _bytes(self, data: bytes) -> None:
        for c in data:
            ch = bytes([c])
            if self.mode == "app":
                if c == 3:
                    self.events.put_nowait(("interrupt", 0))
                continue  # the app does not read the console
            if self.mode == "repl":
                self._friendly(ch)
            elif self.mode == "raw":
                self._raw(ch)

    def _friendly(self, ch: bytes) -> None:
        if ch == b"\x03":
            self.line = b""
            self.uart.write(b"\r\n" + PROMPT)
        elif ch == b"\x01":
            self.mode, self.raw = "raw", b""
            self.uart.write(b"\r\n" + RAW_ENTER)
        elif ch == b"\x04":
            self.uart.write(b"\r\nMPY: soft reboot\r\n")
            self.events.put_nowait(("reset", 5))  # main.py runs the app again
        elif ch in (b"\r", b"\n"):
            line, self.line = self.line.decode("utf-8", "replace"), b""
            self.uart.write(b"\r\n")
            if line.strip():
                self._run(line, "single")
            if self.mode == "repl":
                self.uart.write(PROMPT)
        elif ch in (b"\x08", b"\x7f"):
            if self.line:
                self.line = self.line[:-1]
                self.uart.write(b"\x08 \x08")
        elif ch >= b" ":
            self.line += ch
            self.uart.write(ch)

    def _raw(self, ch: bytes) -> None:
        if ch == b"\x02":
            self.mode = "repl"
            self.uart.write(b"\r\n" + BANNER + PROMPT)
        elif ch == b"\x03":
            self.raw = b""
        elif ch == b"\x01":
            self.raw = b""
        elif ch == b"\x05" and self.raw == b"":
            self.raw = b"\x05"
        elif self.raw.startswith(b"\x05") and len(self.raw) < 3:
            self.raw += ch
            if self.raw == b"\x05A\x01":
                self.raw = b""
                self.uart.write(b"R\x00")  # raw-paste: understood, not supported
        elif ch == b"\x04":
            code, self.raw = self.raw.decode("utf-8", "replace"), b""
            if not code:
                self.uart.write(b"OK\r\nMPY: soft reboot\r\n" + RAW_ENTER)
                self.namespace = {}
                return
            self.uart.write(b"OK")
            failed = self._run(code, "exec", raw=True)
            if self.mode == "raw":
                self.uart.write((b"" if failed else b"\x04") + b"\x04>")
        else:
            self.raw += ch

    def _run(self, code: str, kind: str, raw: bool = False) -> bool:
        """Run REPL input on the host's Python with the board's ``machine`` and its flash as
        the file system's root. -> True when it raised (traceback written)."""
        from boards.virtual.mp.virtualboard import VirtualReset

        ns = self.namespace
        if not ns:
            root = self.vb.root

            def board_open(path: str, *args: Any, **kwargs: Any) -> Any:
                return builtins.open(root / str(path).lstrip("/"), *args, **kwargs)

            ns.update({"__name__": "__main__", "open": board_open})
        try:
            exec(compile(code, "<stdin>", kind), ns)  # noqa: S102 - the REPL
        except VirtualReset as reset:  # machine.reset() and friends
            self.events.put_nowait(("reset", reset.cause))
            self.mode = "resetting"
            return False
        except Exception as e:  # noqa: BLE001 - shown as the REPL shows it
            tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
            text = "".join(traceback.format_exception(type(e), e, tb))
            if raw:
                self.uart.write(b"\x04")
            sys.stdout.write(text)
            return True
        return False

    # -- the bench's life
    async def run(self) -> None:
        from boards.virtual.mp.virtualboard import WDT_RESET

        vb = self.vb
        cause = 1
        keep = set(asyncio.all_tasks())  # the process's own: this one, the catch-up, the UART
        while not self.stopping:
            vb.board.cause = cause
            self.uart.write(b"\r\nrst:0x%x (%s)\r\n" % (cause, CAUSES.get(cause, "SW").encode()))
            self.mode, self.namespace = "app", {}
            app = asyncio.ensure_future(vb.run(max_boots=vb.boots + 1))
            event = asyncio.ensure_future(self.events.get())
            await asyncio.wait({app, event}, return_when=asyncio.FIRST_COMPLETED)
            if app.done() and not event.done():
                event.cancel()
                await self._end_boot(keep)
                cause = vb.board.cause  # the app's own reset: reboot, OTA, watchdog, crash
                continue
            app.cancel()
            await self._end_boot(keep)
            what, cause = event.result()
            if what == "reset":
                continue
            # Ctrl-C: main.run() leaves the app for the REPL; the watchdog runs on.
            import main  # type: ignore[import-not-found]

            sys.stdout.write(getattr(main, "STOPPED", "KeyboardInterrupt") + "\n")
            self.mode = "repl"
            self.uart.write(BANNER + PROMPT)
            cause = await self._at_the_repl()
            if cause == WDT_RESET:
                vb.wdt_bites.append(vb.clock.time())

    async def _end_boot(self, keep: set[asyncio.Task[Any]]) -> None:
        """End every task the boot started, as a reset (or Ctrl-C, which stops the app's
        event loop) ends all of the chip's work, before anything else runs on the board.

        A cancelled task is not gone yet: it ends at its next turn, and it may not end at all,
        since asyncio.wait_for (Python 3.11, which the firmware's timeouts use) returns the
        result of what it waited for when that completed as the cancellation came. Such a
        task (the link's session loop, say) would go on as the old boot beside the new one:
        reconnecting with the bench's client id, taking its connection from the new boot,
        answering Commands and publishing its birth with the old boot number. So each task
        left is cancelled again until it is done, and the next boot starts only then."""
        me = asyncio.current_task()
        rounds = 0
        while True:
            left = {t for t in asyncio.all_tasks() if t is not me and t not in keep}
            left = {t for t in left if not t.done()}
            if not left:
                return
            if rounds:  # for the bench's log (the process's stderr), not its console
                names = ", ".join(sorted(str(t.get_coro()) for t in left))
                print(f"reset: cancelled again ({rounds}): {names}", file=sys.__stderr__)
            rounds += 1
            for t in left:
                t.cancel()
            await asyncio.wait(left, timeout=0.1)

    async def _at_the_repl(self) -> int:
        from boards.virtual.mp.virtualboard import WDT_RESET

        while True:
            try:
                what, cause = await asyncio.wait_for(self.events.get(), 0.05)
                if what == "reset":
                    return cause
            except TimeoutError:
                if self.vb.board.wdt_expired():
                    return WDT_RESET


def serve(args: argparse.Namespace) -> int:
    from boards.virtual import install
    from boards.virtual.bench import VirtualBench
    from boards.virtual.clock import VirtualClock

    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)  # the REPL's control bytes pass untouched
    os.set_blocking(master, False)
    root = Path(args.root)
    clock = VirtualClock(start=time.time() - args.start_ago, speed=args.speed)
    vb = VirtualBench(root, args.profile, None, clock)
    install(vb.board)  # `import machine` at the REPL is this board's
    # A bench on the lab table: a supply on the panel's input, the battery charging from it.
    vb.board.set_solar(18.4, 0.9)
    vb.board.set_battery(13.4, 0.7)
    uart = Uart(master)
    sys.stdout.write(os.ttyname(slave) + "\n")
    sys.stdout.flush()
    console = ConsoleText(uart, sys.__stderr__)
    sys.stdout = sys.stderr = console  # type: ignore[assignment]
    board = Board(vb, uart)

    async def catch_up() -> None:
        while clock.speed != 1.0:  # at now, real time (the gateway refuses the future)
            if clock.time() >= time.time() - 1:
                clock.set_speed(1.0)
            await asyncio.sleep(0.1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def on_input() -> None:
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            board.feed(data)

        def on_signal() -> None:
            board.stopping = True
            vb.stop()
            done.set()

        loop.add_reader(master, on_input)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)

        async def drain() -> None:  # what the UART could not send yet
            while True:
                await asyncio.sleep(0.05)
                if uart.pending:
                    uart.write(b"")

        tasks = [asyncio.ensure_future(c) for c in (board.run(), catch_up(), drain())]
        await done.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    os.close(slave)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testkit.serialbench", description=__doc__)
    ap.add_argument("--root", required=True, help="the bench's flash folder (with config.json)")
    ap.add_argument("--profile", default="bench-v1", help="board profile name or path")
    ap.add_argument("--speed", type=float, default=1.0, help="clock speed until it reaches now")
    ap.add_argument("--start-ago", type=float, default=0.0, help="the clock's start, s ago")
    args = ap.parse_args(argv)
    if not (Path(args.root) / "config.json").exists():
        print(f"error: no config.json in {args.root}", file=sys.stderr)
        return 2
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
