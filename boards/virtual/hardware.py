"""The virtual board on CPython: each bench's ``machine``, ``network``, ``esp32`` and
``ntptime``, the MicroPython modules of ``boards/virtual/mp/`` over one board.

Every bench gets its own :class:`VirtualBoard` and its own copy of those four modules, so
several benches share one process; :func:`boards.virtual.install` puts one board's modules in
``sys.modules`` for firmware that does ``import machine``. What CPython adds around the
model: the virtual clock as the board's time, and the bench's TCP connections.
"""

from __future__ import annotations

import asyncio
import builtins
import types
from importlib import resources
from time import gmtime, struct_time
from typing import Any

from boards.virtual import mp
from boards.virtual.clock import VirtualClock
from boards.virtual.mp import virtualboard
from boards.virtual.mp.virtualboard import Board

_code: dict[str, types.CodeType] = {}


class BoardTime:
    """A :class:`VirtualClock` with the names of MicroPython's ``time`` that the board reads.
    Its ticks are the clock's elapsed milliseconds, unwrapped."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def ticks_ms(self) -> float:
        return self.clock.elapsed_ms()

    @staticmethod
    def ticks_diff(a: float, b: float) -> float:
        return a - b

    def time(self) -> float:
        return self.clock.time()

    def gmtime(self, t: float | None = None) -> struct_time:
        return gmtime(self.clock.time() if t is None else t)


def mp_module(name: str, lib: dict[str, Any]) -> types.ModuleType:
    """``mp/<name>.py`` loaded afresh, its imports of the names in ``lib`` answered with
    those modules, as the VM's ``/lib`` answers them: one bench's copy."""
    if name not in _code:
        path = resources.files(mp) / f"{name}.py"
        _code[name] = compile(path.read_text(), str(path), "exec")

    def lib_import(
        mod: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        if level == 0 and mod in lib:
            return lib[mod]
        return builtins.__import__(mod, globals, locals, fromlist, level)

    module = types.ModuleType(name)
    module.__file__ = _code[name].co_filename
    module.__dict__["__builtins__"] = {**vars(builtins), "__import__": lib_import}
    exec(_code[name], module.__dict__)  # noqa: S102 - our own files, as the VM runs them
    return module


class VirtualBoard(Board):  # type: ignore[misc]
    def __init__(self, profile: dict[str, Any], clock: VirtualClock, uid: bytes = b"\x01") -> None:
        super().__init__(profile, uid, BoardTime(clock), hosted=True)
        self.virtual_clock = clock
        self.writers: list[asyncio.StreamWriter] = []
        self.machine = mp_module("machine", {"virtualboard": virtualboard})
        vars(self.machine)["board"] = self  # the bench this copy of `machine` is
        lib = {"machine": self.machine}
        self.network = mp_module("network", lib)
        self.esp32 = mp_module("esp32", lib)
        self.ntptime = mp_module("ntptime", lib)

    def set_link(self, up: bool) -> None:
        """Wi-Fi up or down; going down cuts every open connection of this bench."""
        super().set_link(up)
        if not up:
            self.kill_sockets()

    def kill_sockets(self) -> None:
        """Abort this bench's TCP connections without a FIN handshake from the firmware."""
        for w in self.writers:
            try:
                w.transport.abort()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self.writers.clear()

    async def open_connection(
        self, host: str, port: int, ssl: Any = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self.link_up:
            raise OSError(113, "EHOSTUNREACH (virtual Wi-Fi down)")
        if ssl is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            reader, writer = await asyncio.open_connection(host, port, ssl=ssl)
        self.writers = [w for w in self.writers if not w.is_closing()] + [writer]
        return reader, writer
