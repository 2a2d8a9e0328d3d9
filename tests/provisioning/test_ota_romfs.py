"""An OTA update on a bench whose app lives in ROMFS ends with the new app in ROMFS.

The board is the VM with the ESP32 kind of ROMFS stand-in (``testkit/mp/romvfs.py``:
the npm port has no ROMFS; the partition is a block device, as ``esp32.Partition`` is). The
real firmware is provisioned into the partition; then ``bench.ota``, as the ``ota`` command
runs it, fetches a new bundle (from the board's own file system: the VM has no sockets, and
``tests/firmware/test_bench_ota.py`` covers the HTTP path), switches at boot, is committed
healthy, and the next boot's ``main.prepare()`` writes the new image into the partition and
drops ``app/``, so the app runs from ``/rom`` again instead of from the GC heap.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from boards.virtual import FIRMWARE
from provisioning.bundle import ROM_NAME, build_bundle
from provisioning.deployment import Deployment
from provisioning.device import Board
from provisioning.steps import Run, step_app
from testkit.micropython import MicroPythonBoard

REPO = Path(__file__).resolve().parents[2]
FAKES = REPO / "boards" / "virtual" / "mp"

FETCH = """\
from bench import ota, trust
class NoWait:  # this port's asyncio runs only from JavaScript's loop: nothing here waits
    @staticmethod
    async def sleep(t):
        pass
    @staticmethod
    async def net_wait_ms(aw, ms):
        return await aw
ota.asyncio = NoWait
ota.runtime = NoWait
def run(coro):
    try:
        coro.send(None)
    except StopIteration as e:
        return e.args[0] if e.args else None
    raise RuntimeError("the update waited")
class R:
    status = 200
    def __init__(self, p):
        self.f = open(p, "rb")
    async def read(self, n):
        return self.f.read(n)
    async def readinto(self, b):
        return self.f.readinto(b)
    def close(self):
        self.f.close()
async def fetch(url):
    return R(url[len("http://gw"):])
class Nvs:
    def __init__(self):
        self.d = {{}}
    def get_blob(self, k, buf):
        if k not in self.d:
            raise OSError(-0x1102)
        buf[: len(self.d[k])] = self.d[k]
        return len(self.d[k])
    def set_blob(self, k, v):
        self.d[k] = bytes(v)
    def commit(self):
        pass
ev = []
o = ota.Ota("/", trust.Trust(Nvs(), {anchor!r}), lambda s, v, d=None: ev.append(s), fetch)
"""


def _on_board(port: str, code: str) -> str:
    with Board(port, timeout=60) as board:
        return board.exec(code, timeout=120).decode().strip()


def test_an_ota_on_a_romfs_bench_writes_the_committed_app_into_the_partition(
    micropython_board_factory: Callable[..., MicroPythonBoard],
    deployment: Deployment,
    tmp_path: Path,
) -> None:
    mp = micropython_board_factory(
        preload={"lib": FAKES}, romfs_size=256 * 1024, romfs_kind="esp32"
    )
    partition = mp.rom_dir / "partition.bin" if mp.rom_dir else Path("/nonexistent")
    bench = deployment.bench("mostar-01")
    summary = step_app(Run(dep=deployment, port=mp.port, bench=bench))
    assert "package file(s) in ROMFS" in summary and "written and verified" in summary, summary
    provisioned = partition.read_bytes()

    fw = tmp_path / "fw2"
    shutil.copytree(FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    init = fw / "bench" / "__init__.py"
    init.write_text(init.read_text() + '\nOTA_MARK = "2.0.0"\n')
    bundle = build_bundle(fw, mp.fs_dir / "www", deployment.ota_signing_key, version="2.0.0")
    image = bundle.read(ROM_NAME)
    assert bundle.manifest["rom"]["sha256"] == hashlib.sha256(image).hexdigest()
    assert not provisioned.startswith(image)
    sha = hashlib.sha256(bundle.read("manifest.json")).hexdigest()

    # The `ota` command's steps, by the provisioned app imported from /rom.
    out = _on_board(
        mp.port,
        FETCH.format(anchor=deployment.ota_anchor)
        + f'ok = run(o.run("http://gw/www/manifest.json", "2.0.0", "{sha}"))\n'
        + "print(ok, repr(o.error), ev)\n"
        + "print(ota.__file__)\n",
    )
    assert out.splitlines() == [
        "True '' ['downloading', 'verified']",
        "/rom/bench/ota.mpy",
    ], out
    assert (mp.fs_dir / "app.new" / ROM_NAME).read_bytes() == image

    out = _on_board(
        mp.port, FETCH.format(anchor=deployment.ota_anchor) + "print(o.boot(), o.healthy())"
    )
    assert out == "switched True", out  # the trial app is healthy: its image waits for a boot
    assert json.loads((mp.fs_dir / "ota.json").read_text())["rom"][0] == ROM_NAME
    assert partition.read_bytes() == provisioned  # the partition kept the previous app

    mp.restart()  # the reboot the app asks for
    out = _on_board(
        mp.port,
        "import sys, main\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in main.APP_PACKAGES))\n"
        "print(main.prepare('/'))\n"
        "import bench, bench.app\n"
        "print(bench.OTA_MARK, bench.app.__file__)\n",
    )
    assert out.splitlines() == [
        "[]",  # nothing imported from /rom before its flash is rewritten
        "('', None)",
        "2.0.0 /rom/bench/app.mpy",
    ], out
    written = partition.read_bytes()
    assert written[: len(image)] == image
    assert not (mp.fs_dir / "app").exists() and not (mp.fs_dir / "bench").exists()
    state = json.loads((mp.fs_dir / "ota.json").read_text())
    assert state["rom"] is None and state["version"] == "2.0.0", state

    mp.restart()  # and it stays there
    out = _on_board(
        mp.port,
        "import main\nprint(main.prepare('/'))\nimport bench\nprint(bench.OTA_MARK, bench.__file__)",
    )
    assert out.splitlines() == ["('', None)", "2.0.0 /rom/bench/__init__.mpy"], out
    assert partition.read_bytes() == written
