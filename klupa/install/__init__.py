"""`klupa gateway install` / `uninstall`: a municipality's Raspberry Pi in one command.

Everything `docs/operations.md` used to list by hand: Mosquitto with the generated
configuration, password file, ACL and certificates; chrony serving the benches; the `klupa`
user; the gateway's configuration and secrets (0640, group klupa); the systemd units, enabled
and started after time sync; a daily backup timer; journald limits.

Idempotent: each file is compared with what is there and written only when it differs; a run
that changes nothing says so. The gateway's configuration is written once and then kept (the
operator edits it). ``--dry-run`` prints the plan; ``--root DIR`` installs under a prefix,
where every path inside the files points into the prefix too (how the tests start Mosquitto
and the gateway from exactly the installed files). What was installed is listed in
``/var/lib/klupa/install-{m}.json``, which ``uninstall`` reads; it keeps the store and the
backups unless ``--purge``.

The application layer: it reads the deployment folder (provisioning) and writes what the
gateway (edge_gateway) runs from. The texts of the files it writes (systemd units, chrony,
journald, the gateway's configuration) are in ``files.py``.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from klupa.install.files import (
    BACKUP_TIMER,
    CHRONY,
    JOURNALD,
    KLUPA_BIN,
    at_root,
    backup_service,
    gateway_config,
    gateway_unit,
)

if TYPE_CHECKING:
    from provisioning.broker import PiPaths

MANIFEST = "/var/lib/klupa/install-{m}.json"


# --------------------------------------------------------------------------- the plan


@dataclass
class Item:
    """One thing on the Pi: a file (``content``), a directory, or a symlink (``target``)."""

    path: Path
    kind: str = "file"  # file, dir, link
    content: bytes = b""
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    target: str = ""
    keep: bool = False  # written once, then the operator's
    data: bool = False  # the gateway's data: kept by uninstall unless --purge
    restarts: str = ""  # the service that must (re)read it

    def state(self) -> str:
        """What applying it would do: create, update, unchanged, kept."""
        p = self.path
        if self.kind == "link":
            if p.is_symlink() and os.readlink(p) == self.target:
                return "unchanged"
            return "update" if p.is_symlink() or p.exists() else "create"
        if self.kind == "dir":
            if not p.is_dir():
                return "create"
            return "unchanged" if _mode(p) == self.mode else "update"
        if not p.exists():
            return "create"
        if self.keep:
            return "kept"
        if p.read_bytes() != self.content or _mode(p) != self.mode:
            return "update"
        return "unchanged"


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o7777


@dataclass
class Options:
    deployment: Path
    municipality: str
    root: str = "/"
    mqtt_port: int = 1883
    broker_user: str = "mosquitto"
    klupa: str = KLUPA_BIN
    dry_run: bool = False
    purge: bool = False
    log: list[str] = field(default_factory=list)


def plan(o: Options) -> list[Item]:
    from provisioning import broker
    from provisioning.deployment import Deployment

    dep = Deployment(o.deployment)
    m = o.municipality
    mun = dep.municipality(m)  # raises with the reason for an unknown municipality
    src = dep.broker_dir(m)
    missing = [n for n in (*broker.BROKER_FILES, "gateway-mqtt.pass", "ops-mqtt.pass")]
    missing = [n for n in missing if not (src / n).is_file()]
    if missing:
        raise InstallError(
            f"{src} lacks {', '.join(missing)}: run `klupa provision init` (and `register` for "
            "each bench) on the technician's laptop first"
        )
    pi = broker.PiPaths(m, PurePosixPath(o.root))
    benches = sorted(b.id for b in dep.benches() if b.municipality == m)
    return [
        *_broker_items(o, pi, src, mun.mqtt_port),
        *_gateway_items(o, pi, src, benches),
        *_systemd_items(o),
    ]


def _at(o: Options, path: str) -> Path:
    return Path(at_root(o.root, path))


def _broker_items(o: Options, pi: PiPaths, src: Path, bench_port: int) -> list[Item]:
    """Mosquitto: its directories, the deployment's broker files, its configuration."""
    from provisioning import broker

    items: list[Item] = [
        Item(Path(pi.broker_dir), "dir", mode=0o750, owner=o.broker_user, group=o.broker_user),
        Item(Path(pi.persistence_dir), "dir", mode=0o750, owner=o.broker_user, group=o.broker_user),
    ]
    for name in broker.BROKER_FILES:
        private = name in ("passwd", "acl", "server.key")
        items.append(
            Item(
                Path(pi.broker_file(name)),
                content=(src / name).read_bytes(),
                mode=0o600 if private else 0o644,
                owner=o.broker_user,
                group=o.broker_user,
                restarts="mosquitto",
            )
        )
    conf = broker.mosquitto_conf(pi.municipality, bench_port, pi.root, o.mqtt_port, o.broker_user)
    return [*items, Item(Path(pi.mosquitto_conf), content=conf.encode(), restarts="mosquitto")]


def _gateway_items(o: Options, pi: PiPaths, src: Path, benches: list[str]) -> list[Item]:
    """chrony for the benches, and the gateway's secrets, configuration, store and backups."""
    m = pi.municipality
    return [
        Item(_at(o, "/etc/chrony/conf.d/klupa.conf"), content=CHRONY.encode(), restarts="chrony"),
        Item(_at(o, "/etc/klupa"), "dir", mode=0o750, group="klupa"),
        Item(
            Path(pi.gateway_password),
            content=(src / "gateway-mqtt.pass").read_bytes(),
            mode=0o640,
            group="klupa",
        ),
        Item(Path(pi.ops_password), content=(src / "ops-mqtt.pass").read_bytes(), mode=0o600),
        Item(
            Path(pi.gateway_config),
            content=gateway_config(m, o.root, o.mqtt_port, benches).encode(),
            mode=0o640,
            group="klupa",
            keep=True,
        ),
        Item(_at(o, "/var/lib/klupa"), "dir", mode=0o750, owner="klupa", group="klupa", data=True),
        Item(
            _at(o, "/var/backups/klupa"), "dir", mode=0o750, owner="klupa", group="klupa", data=True
        ),
    ]


def _systemd_items(o: Options) -> list[Item]:
    """The units (gateway, daily backup), enabled for this municipality, and journald's limits."""
    m = o.municipality
    units = _at(o, "/etc/systemd/system")
    gw_unit, bk_unit, bk_timer = (
        units / "klupa-gateway@.service",
        units / "klupa-backup@.service",
        units / "klupa-backup@.timer",
    )
    return [
        Item(gw_unit, content=gateway_unit(o.root, o.klupa).encode(), restarts="systemd"),
        Item(bk_unit, content=backup_service(o.root, o.klupa).encode(), restarts="systemd"),
        Item(bk_timer, content=BACKUP_TIMER.encode(), restarts="systemd"),
        Item(
            _at(o, "/etc/systemd/journald.conf.d/klupa.conf"),
            content=JOURNALD.encode(),
            restarts="systemd-journald",
        ),
        Item(
            units / "multi-user.target.wants" / f"klupa-gateway@{m}.service",
            "link",
            target=at_root("/", "/etc/systemd/system/klupa-gateway@.service"),
        ),
        Item(
            units / "timers.target.wants" / f"klupa-backup@{m}.timer",
            "link",
            target=at_root("/", "/etc/systemd/system/klupa-backup@.timer"),
        ),
    ]


class InstallError(Exception):
    pass


# --------------------------------------------------------------------------- applying it


def _ids(owner: str, group: str) -> tuple[int, int] | None:
    """uid and gid where both exist on this machine (a --root install may lack them)."""
    try:
        return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def _write(item: Item) -> None:
    item.path.parent.mkdir(parents=True, exist_ok=True)
    if item.kind == "dir":
        item.path.mkdir(parents=True, exist_ok=True)
        item.path.chmod(item.mode)
    elif item.kind == "link":
        if item.path.is_symlink() or item.path.exists():
            item.path.unlink()
        item.path.symlink_to(item.target)
        return
    else:
        tmp = item.path.with_name(item.path.name + ".klupa-new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(item.content)
        tmp.chmod(item.mode)
        os.replace(tmp, item.path)
    if os.geteuid() == 0 and (ids := _ids(item.owner, item.group)) is not None:
        os.chown(item.path, *ids)


def _run(cmd: list[str], o: Options) -> None:
    o.log.append("$ " + " ".join(cmd))
    if not o.dry_run:
        subprocess.run(cmd, check=True)


def _system(o: Options, changed: set[str]) -> None:
    """On the Pi itself (root "/"): packages, the klupa user, and systemd."""
    if o.root != "/":
        o.log.append("(under --root: no packages, users or services are touched)")
        return
    missing = [
        pkg
        for pkg, binary in (("mosquitto", "mosquitto"), ("chrony", "chronyd"))
        if not shutil.which(binary) and not Path(f"/usr/sbin/{binary}").exists()
    ]
    if missing:
        _run(["apt-get", "install", "-y", "--no-install-recommends", *missing], o)
    if _ids("klupa", "klupa") is None:
        _run(
            [
                "useradd",
                "--system",
                "--home-dir",
                "/var/lib/klupa",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                "klupa",
            ],
            o,
        )
    if not shutil.which("systemctl"):
        o.log.append("systemctl not found: enable and start the units yourself")
        return
    m = o.municipality
    if changed & {"systemd"}:
        _run(["systemctl", "daemon-reload"], o)
    if "systemd-journald" in changed:
        _run(["systemctl", "restart", "systemd-journald"], o)
    if "chrony" in changed:
        _run(["systemctl", "restart", "chrony"], o)
    if "mosquitto" in changed:
        _run(["systemctl", "restart", "mosquitto"], o)
    _run(
        ["systemctl", "enable", "--now", f"klupa-gateway@{m}.service", f"klupa-backup@{m}.timer"], o
    )


def install(o: Options) -> int:
    items = plan(o)
    changed: set[str] = set()
    done: list[str] = []
    counts: dict[str, int] = {}
    for item in items:
        st = item.state()
        counts[st] = counts.get(st, 0) + 1
        if st in ("create", "update"):
            o.log.append(f"{'would ' if o.dry_run else ''}{st} {item.path}")
            if not o.dry_run:
                _write(item)
            if item.restarts:
                changed.add(item.restarts)
        elif st == "kept":
            o.log.append(f"keep {item.path} (exists: yours to edit)")
        done.append(str(item.path))
    if not o.dry_run:
        man = Path(at_root(o.root, MANIFEST.format(m=o.municipality)))
        man.parent.mkdir(parents=True, exist_ok=True)
        record = {"municipality": o.municipality, "root": o.root, "files": done}
        text = json.dumps(record, indent=1) + "\n"
        if not man.exists() or man.read_text() != text:
            man.write_text(text)
    _system(o, changed)
    n = counts.get("create", 0) + counts.get("update", 0)
    if n == 0:
        o.log.append(f"nothing to change: {o.municipality}'s gateway is installed as planned")
    else:
        verb = "would change" if o.dry_run else "changed"
        o.log.append(f"{verb} {n} of {len(items)} items for {o.municipality}'s gateway")
    return 0


def uninstall(o: Options) -> int:
    man = Path(at_root(o.root, MANIFEST.format(m=o.municipality)))
    if not man.is_file():
        raise InstallError(f"{man} not found: nothing installed for {o.municipality} here")
    items = {str(i.path): i for i in plan(o)}
    files = json.loads(man.read_text())["files"]
    if o.root == "/" and shutil.which("systemctl"):
        m = o.municipality
        _run(
            [
                "systemctl",
                "disable",
                "--now",
                f"klupa-gateway@{m}.service",
                f"klupa-backup@{m}.timer",
            ],
            o,
        )
    for path in reversed(files):
        item = items.get(path)
        p = Path(path)
        data = item is not None and (item.data or item.keep)
        if data and not o.purge:
            o.log.append(f"keep {p} (data; --purge removes it)")
            continue
        if p.is_symlink() or p.is_file():
            o.log.append(f"{'would ' if o.dry_run else ''}remove {p}")
            if not o.dry_run:
                p.unlink()
        elif p.is_dir():
            if data or not any(p.iterdir()):
                o.log.append(f"{'would ' if o.dry_run else ''}remove {p}/")
                if not o.dry_run:
                    shutil.rmtree(p)
    if not o.dry_run:
        man.unlink(missing_ok=True)
    return 0


def main(argv: list[str], uninstalling: bool = False) -> int:
    name = "uninstall" if uninstalling else "install"
    p = argparse.ArgumentParser(
        prog=f"klupa gateway {name}",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("--deployment", required=True, type=Path, help="the deployment folder")
    p.add_argument("--municipality", required=True, help="e.g. mostar")
    p.add_argument("--root", default="/", help="install under this prefix (tests)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--mqtt-port", type=int, default=1883, help="the broker's loopback port")
    p.add_argument("--broker-user", default="mosquitto", help="the user Mosquitto runs as")
    p.add_argument("--klupa", default=KLUPA_BIN, help="the klupa command the units run")
    if uninstalling:
        p.add_argument("--purge", action="store_true", help="also the store and its backups")
    try:
        a = p.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    o = Options(
        deployment=a.deployment,
        municipality=a.municipality,
        root=str(Path(a.root).resolve()) if a.root != "/" else "/",
        mqtt_port=a.mqtt_port,
        broker_user=a.broker_user,
        klupa=a.klupa,
        dry_run=a.dry_run,
        purge=getattr(a, "purge", False),
    )
    if o.root == "/" and os.geteuid() != 0 and not o.dry_run:
        print(f"klupa gateway {name}: run it as root (sudo), or with --dry-run", file=sys.stderr)
        return 2
    try:
        rc = uninstall(o) if uninstalling else install(o)
    except (InstallError, KeyError, ValueError, OSError, subprocess.CalledProcessError) as exc:
        for line in o.log:
            print(line)
        print(f"klupa gateway {name}: {exc}", file=sys.stderr)
        return 1
    for line in o.log:
        print(line)
    return rc
