"""Bytes sent and serial round trips of the `app` upload: first run, unchanged re-run, and
mpremote's plain `cp -r` of the same files, against the MicroPython VM on a pseudo-terminal.

Target: the unchanged re-run sends under 5 % of the first run's bytes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provisioning import signing  # noqa: E402
from provisioning.bundle import build_bundle  # noqa: E402
from provisioning.device import Board, sync_files  # noqa: E402
from testkit.micropython import MicroPythonBoard, need_micropython_vm  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    try:
        node, module = need_micropython_vm()
    except BaseException as e:  # pytest.skip outside pytest
        print(f"skipped: MicroPython VM not available ({e})")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(REPO / "firmware", Path(tmp) / "bundle", signing.generate())
        files = {"/" + f["path"]: bundle.read(f["path"]) for f in bundle.files()}
        total = sum(len(d) for d in files.values())
        fs = Path(tmp) / "flash"
        fs.mkdir()
        rows = []
        with MicroPythonBoard(fs, node, module) as vm:
            for label in ("first run", "unchanged re-run"):
                with Board(vm.port) as board:
                    sync_files(board, files)
                    rows.append((label, board.stats.bytes_out, board.stats.round_trips))
        fs2 = Path(tmp) / "flash2"
        fs2.mkdir()
        with MicroPythonBoard(fs2, node, module) as vm, Board(vm.port) as board:
            for path, data in files.items():  # what `mpremote cp -r` does: every file, 256 B/exec
                parts = path.strip("/").split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    try:
                        board.transport.fs_mkdir("/" + "/".join(parts[:i]))
                    except Exception:
                        pass
                board.transport.fs_writefile(path, data)
            rows.append(("mpremote cp -r", board.stats.bytes_out, board.stats.round_trips))
    print(f"app bundle: {len(files)} files, {total} bytes")
    first = rows[0][1]
    for label, sent, trips in rows:
        print(
            f"{label:<18} {sent:>9} bytes sent {trips:>6} round trips  {sent / first:6.1%} of first"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
