"""The `app` step: the app bundle (changed files only, or the packages into a ROMFS partition),
the bench's /config.json and /board.json, and the boot number's start."""

from __future__ import annotations

import calendar
import json
from typing import TYPE_CHECKING, Any

from provisioning import romfs
from provisioning.bundle import MANIFEST_NAME, BundleError, build_bundle
from provisioning.deployment import WIFI_PLACEHOLDER, Bench
from provisioning.device import Board, BoardError, dirs_of, sync_files
from provisioning.errors import HINT_NO_REPL, StepError
from provisioning.steps_board import board_profile

if TYPE_CHECKING:
    from provisioning.steps import Run

EPOCH_2020 = calendar.timegm((2020, 1, 1, 0, 0, 0))


def boot_start(now: float) -> int:
    """docs/protocol.md: provisioning starts the boot number at minutes since 2020-01-01 UTC."""
    return int((now - EPOCH_2020) // 60)


def bench_config(run: Run, bench: Bench) -> dict[str, Any]:
    m = run.dep.municipality(bench.municipality)
    wifi_pw = run.dep.wifi_password(m.id)
    if wifi_pw == WIFI_PLACEHOLDER:
        raise StepError(
            "app",
            run.port,
            f"the Wi-Fi password for {m.id}",
            "the placeholder",
            f"set [wifi] {m.id} in {run.dep.secrets_path}",
        )
    return {
        "bench": bench.id,
        "municipality": m.id,
        "wifi": {"ssid": m.wifi_ssid, "password": wifi_pw},
        "mqtt": {
            "host": m.gateway_host,
            "port": m.mqtt_port,
            "tls": True,
            "user": bench.id,
            "password": run.dep.ensure_mqtt_password(bench.id),
            "ca": "/ca.crt",
        },
        "ntp": m.ntp_server,
        "boot": boot_start(run.now()),
        "ota_pub": run.dep.ota_anchor,
        "lat": bench.lat,
        "lon": bench.lon,
    }


def app_files(run: Run, boot: int | None = None) -> tuple[dict[str, bytes], str]:
    """Every file the app step puts on the board, by absolute path, and the app version.

    ``boot``: the boot number start already on the board (kept, so a re-run changes nothing).
    """
    bench = run.need_bench("app")
    with run.folder_lock:
        try:
            bundle = build_bundle(
                run.firmware_dir, run.dep.build_dir / "bundle", run.dep.ota_signing_key
            )
        except BundleError as e:
            raise StepError("app", run.port, "an app bundle", str(e), "fix the firmware") from None
        files = bundle.contents()
        files["/board.json"] = json.dumps(board_profile(run, "app")).encode()
        config = bench_config(run, bench)
        if boot:
            config["boot"] = boot
        files["/config.json"] = json.dumps(config).encode()
        files["/ca.crt"] = (run.dep.pki_dir / "ca.crt").read_bytes()
        files["/" + MANIFEST_NAME] = bundle.read(MANIFEST_NAME)  # last: marks a full upload
    return files, bundle.version


def step_app(run: Run) -> str:
    with run.board("app") as board:
        try:
            files, version = app_files(run, _boot_on_board(board, run.need_bench("app").id))
            old = board.read_text("/" + MANIFEST_NAME)
            stale: list[str] = []
            if old:
                try:
                    stale = ["/" + f["path"] for f in json.loads(old).get("files", [])]
                except (ValueError, AttributeError, TypeError):
                    stale = []
            rom_note, in_rom = _app_to_romfs(run, board, files)
            on_fs = {p: d for p, d in files.items() if p not in in_rom}
            # a copy of a package on the file system would come before /rom on sys.path
            copies = [p for p, h in board.hashes(sorted(in_rom)).items() if h is not None]
            stale = [p for p in stale if p not in in_rom] + copies
            result = sync_files(board, on_fs, run.tick("app"), stale=stale)
            board.remove_empty_dirs(dirs_of(list(in_rom)))  # an empty one shadows /rom too
            boot = json.loads(files["/config.json"])["boot"]
            run.facts.setdefault("micropython", board.micropython_version())
        except BoardError as e:
            raise StepError(
                "app",
                run.port,
                "every app file on the board with its SHA-256",
                str(e),
                "run the app step again (it resumes); " + HINT_NO_REPL,
            ) from None
        board.soft_reset()
    run.facts["app"] = version
    return (
        f"app {version}: {len(result.copied)} file(s) copied ({result.bytes_copied} bytes), "
        f"{len(result.unchanged)} unchanged, {len(result.removed)} removed, all hashes verified; "
        f"boot number {boot}{rom_note}"
    )


def _app_to_romfs(run: Run, board: Board, files: dict[str, bytes]) -> tuple[str, set[str]]:
    """Put the app's packages in the board's ROMFS partition when it has one they fit in.

    Returns a note for the step's summary and the paths now served from /rom.
    """
    part = romfs.query(board)
    if part is None:
        return "", set()
    packages = romfs.rom_files(files)
    image = romfs.build_image(packages)
    if len(image) > part.size:
        return (
            f"; the {len(image)}-byte ROMFS image exceeds the board's {part.size}-byte "
            "partition: packages on the file system",
            set(),
        )
    written = romfs.deploy(board, image, part, run.tick("app"))
    state = "written and verified" if written else "unchanged"
    return (
        f"; {len(packages)} package file(s) in ROMFS ({len(image)} of {part.size} bytes, {state})",
        set(packages),
    )


def _boot_on_board(board: Board, bench_id: str) -> int | None:
    """The boot number start in this bench's /config.json on the board, if any.

    docs/protocol.md: provisioning starts the boot number at minutes since 2020; the firmware
    takes max(its last boot, config's start - 1) + 1, so a start is written once per flash.
    """
    # Parsed on the board so that only these two fields (no secret) cross the wire.
    try:
        found = board.eval(
            "(lambda j:(lambda c:(c.get('bench'),c.get('boot')) if isinstance(c,dict) else None)"
            "(j.load(open('/config.json'))))(__import__('json')) "
            "if 'config.json' in __import__('os').listdir('/') else None"
        )
    except BoardError:  # unreadable or not JSON: a new start, as after a reflash
        return None
    if isinstance(found, tuple) and found[0] == bench_id and isinstance(found[1], int):
        return int(found[1])
    return None
