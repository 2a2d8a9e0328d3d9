"""What the host benchmarks (benchmarks/gateway_*.py, ops_install_alerts.py) share: a real
service started outside pytest, the gateway in a process of its own, and what those processes
write and hold, read from /proc."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

from klupa.services import Service, children
from testkit.services import find_program

S = TypeVar("S", bound=Service)


def start_service(kind: type[S], program: str, workdir: Path) -> S:
    """``kind`` of server on ``program`` (from PATH or an sbin folder) in the new folder
    ``workdir``, returned once it answers; stop or kill it yourself."""
    service = kind(binary=find_program(program) or program, workdir=workdir)
    workdir.mkdir()
    return service.start()


def influx1_sink(url: str) -> str:
    """The ``[influxdb]`` table of a gateway config writing to the InfluxDB 1.x at ``url``."""
    return f'[influxdb]\nurl = "{url}"\napi_version = 1\ndatabase = "benches"\n'


def gateway_process(config: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """The gateway in a process of its own (``python -m edge_gateway run``) on ``config``."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge_gateway", "run", "--config", str(config)], **popen
    )


def tree_figure(pid: int, file: str, key: str) -> int:
    """``key``'s number in /proc/PID/``file`` (``io``: ``write_bytes``; ``status``: ``VmRSS``
    in kB) summed over the process and its children (the gateway and its forwarder); a
    process that ended meanwhile counts 0."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/{file}").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == key:
                    total += int(value.split()[0])
        except OSError:
            pass
    return total


def write_bytes(pid: int) -> int:
    """Bytes the process and its children have written to the block layer (/proc/PID/io)."""
    return tree_figure(pid, "io", "write_bytes")


def rss_kb(pid: int) -> int:
    """Resident memory of the process and its children, kB (/proc/PID/status)."""
    return tree_figure(pid, "status", "VmRSS")
