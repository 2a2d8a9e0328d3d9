"""Fixtures for the provisioning tests: a deployment folder, a test image, a lossy cable."""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from provisioning.create import create_deployment
from provisioning.deployment import Deployment, _render_secrets, write_private


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    dep = create_deployment(tmp_path / "deploy")
    # Real-looking Wi-Fi passwords, so the secrets test has something to look for.
    for mid in dep.municipalities():
        dep.secrets["wifi"][mid] = f"wifi-{mid}-{os.urandom(6).hex()}"
    write_private(dep.secrets_path, _render_secrets(dep.secrets))
    dep.reload()
    return dep


def _pin_romfs_build(dep: Deployment, chip: str = "esp32") -> None:
    """The deployment pins a ROMFS build for ``chip``: the path of a board without PSRAM."""
    text = dep.inventory_path.read_text()
    head = f"[micropython.{chip}]\n"
    at = text.index(head) + len(head)
    end = text.index("romfs = false", at)
    dep.inventory_path.write_text(text[:end] + "romfs = true" + text[end + len("romfs = false") :])
    dep.reload()


@pytest.fixture
def pin_romfs_build() -> Callable[..., None]:
    """``pin_romfs_build(dep, chip="esp32")``: the deployment pins a ROMFS build for ``chip``."""
    return _pin_romfs_build


@pytest.fixture
def test_image(tmp_path: Path) -> bytes:
    """A stand-in for a MicroPython image: an ESP image header then incompressible bytes."""
    return bytes([0xE9, 0x03, 0x02, 0x20]) + os.urandom(96 * 1024 - 4)


def _slip_frames(buf: bytearray) -> list[bytes]:
    frames = []
    while True:
        start = buf.find(0xC0)
        if start < 0:
            buf.clear()
            return frames
        end = buf.find(0xC0, start + 1)
        if end < 0:
            del buf[:start]
            return frames
        raw = bytes(buf[start + 1 : end])
        del buf[: end + 1]
        if raw:
            frames.append(raw.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb"))


class LossyCable:
    """A TCP relay in front of the mock that, like a long or poor USB cable, carries the
    ROM baud rate but drops the link once esptool switches above ``max_baud``."""

    def __init__(self, upstream_port: int, max_baud: int) -> None:
        self.upstream_port = upstream_port
        self.max_baud = max_baud
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requested: list[int] = []
        self.dropped: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        broken = threading.Event()

        def down() -> None:
            try:
                while not broken.is_set():
                    data = upstream.recv(4096)
                    if not data:
                        break
                    client.sendall(data)
            except OSError:
                pass
            broken.set()

        t = threading.Thread(target=down, daemon=True)
        t.start()
        pending = bytearray()
        try:
            client.settimeout(0.2)
            while not broken.is_set() and not self._stop.is_set():
                try:
                    data = client.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                upstream.sendall(data)
                pending += data
                for frame in _slip_frames(pending):
                    if len(frame) >= 12 and frame[0] == 0x00 and frame[1] == 0x0F:
                        baud = struct.unpack_from("<I", frame, 8)[0]
                        self.requested.append(baud)
                        if baud > self.max_baud:
                            self.dropped.append(baud)
                            threading.Event().wait(0.3)  # let the ack through, then fail
                            broken.set()
        except OSError:
            pass
        finally:
            broken.set()
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            t.join(timeout=2)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(timeout=2)


@pytest.fixture
def lossy_cable() -> Iterator[type[LossyCable]]:
    made: list[LossyCable] = []

    class Made(LossyCable):
        def __init__(self, upstream_port: int, max_baud: int) -> None:
            super().__init__(upstream_port, max_baud)
            made.append(self)

    yield Made
    for c in made:
        c.close()
