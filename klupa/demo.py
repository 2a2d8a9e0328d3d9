"""`klupa demo`: the whole system on this machine with no hardware.

This first version starts a Mosquitto broker and reports which parts of the system are
not yet available; it grows as the gateway, portal and virtual benches land.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="klupa demo", description=__doc__)
    parser.add_argument("--port", type=int, default=1883, help="MQTT port (default 1883)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    args = parser.parse_args(argv)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists():
        print("klupa demo: mosquitto is not installed (run `make demo` as root)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="klupa-demo-"))
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {args.port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([mosquitto, "-c", str(conf)])
    print(f"klupa demo: Mosquitto on 127.0.0.1:{args.port}; Ctrl-C stops")
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        while not stop and proc.poll() is None:
            if deadline and time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0
