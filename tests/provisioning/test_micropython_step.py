"""`micropython` against esp32-mock-bootloader: flash, verify, refuse bad images, fall back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from esptool.cmds import detect_chip

from provisioning.deployment import Deployment
from provisioning.errors import StepError
from provisioning.steps import Run, step_micropython


def _pin(dep: Deployment, chip: str, **values: str) -> None:
    text = dep.inventory_path.read_text()
    head = f"[micropython.{chip}]\n"
    start = text.index(head)
    block_end = text.index("offset", start)
    block = text[start:block_end]
    for key, value in values.items():
        lines = [ln for ln in block.splitlines() if not ln.startswith(f"{key} =")]
        lines.append(f'{key} = "{value}"')
        block = "\n".join(lines) + "\n"
    dep.inventory_path.write_text(text[:start] + block + text[block_end:])
    dep.reload()


def _flash_md5(url: str, offset: int, size: int) -> str:
    esp = detect_chip(url, 115200, "no-reset", connect_attempts=2)
    try:
        return str(esp.flash_md5sum(offset, size))
    finally:
        esp._port.close()


def _run(dep: Deployment, port: str, bench: str) -> Run:
    return Run(dep=dep, port=port, bench=dep.bench(bench), probe_repl=False)


@pytest.mark.parametrize(
    ("chip", "bench", "board", "offset"),
    [("esp32", "mostar-01", "bench-v1", 0x1000), ("esp32s3", "trebinje-01", "bench-s3-v2", 0x0)],
)
def test_image_lands_and_verifies(
    mock_bootloader,
    deployment: Deployment,
    test_image: bytes,
    tmp_path: Path,
    chip: str,
    bench: str,
    board: str,
    offset: int,
) -> None:
    text = deployment.inventory_path.read_text().replace(
        f'[benches.{bench}]\nmunicipality = "{bench[:-3]}"\nboard = "bench-v1"',
        f'[benches.{bench}]\nmunicipality = "{bench[:-3]}"\nboard = "{board}"',
    )
    deployment.inventory_path.write_text(text)
    image = tmp_path / "mp.bin"
    image.write_bytes(test_image)
    _pin(deployment, chip, image=str(image), sha256=hashlib.sha256(test_image).hexdigest())
    # The mock always has 4 MB of flash: a copy of the profile says so.
    boards = tmp_path / "boards"
    boards.mkdir()
    profile = json.loads((Path(__file__).parents[2] / "boards" / f"{board}.json").read_text())
    profile["flash_mb"] = 4
    (boards / f"{board}.json").write_text(json.dumps(profile))
    mock = mock_bootloader(chip)
    run = _run(deployment, mock.url, bench)
    run.boards_dir = boards

    summary = step_micropython(run)

    assert "verified" in summary
    assert run.facts["chip"] == {"esp32": "ESP32", "esp32s3": "ESP32-S3"}[chip]
    assert run.facts["micropython"] == deployment.inventory["micropython"]["version"]
    assert _flash_md5(mock.url, offset, len(test_image)) == hashlib.md5(test_image).hexdigest()


def test_corrupted_cache_file_is_refused_before_flashing(
    mock_bootloader, deployment: Deployment, test_image: bytes
) -> None:
    pinned = hashlib.sha256(test_image).hexdigest()
    _pin(deployment, "esp32", url="http://127.0.0.1:9/never-fetched.bin", sha256=pinned)
    cache = deployment.cache_dir
    cache.mkdir()
    cached = cache / f"micropython-esp32-{pinned[:16]}.bin"
    damaged = bytearray(test_image)
    damaged[5000] ^= 0xFF
    cached.write_bytes(bytes(damaged))
    mock = mock_bootloader("esp32")

    with pytest.raises(StepError) as err:
        step_micropython(_run(deployment, mock.url, "mostar-01"))

    assert err.value.step == "micropython"
    assert "corrupted" in err.value.seen and str(cached) in err.value.hint
    erased = hashlib.md5(b"\xff" * len(test_image)).hexdigest()
    assert _flash_md5(mock.url, 0x1000, len(test_image)) == erased  # nothing was written


def test_cached_image_flashes_offline(
    mock_bootloader, deployment: Deployment, test_image: bytes
) -> None:
    pinned = hashlib.sha256(test_image).hexdigest()
    # An unreachable URL: only the cache can serve the image.
    _pin(deployment, "esp32", url="http://127.0.0.1:9/unreachable.bin", sha256=pinned)
    deployment.cache_dir.mkdir()
    (deployment.cache_dir / f"micropython-esp32-{pinned[:16]}.bin").write_bytes(test_image)
    mock = mock_bootloader("esp32")

    step_micropython(_run(deployment, mock.url, "mostar-01"))

    assert _flash_md5(mock.url, 0x1000, len(test_image)) == hashlib.md5(test_image).hexdigest()


def test_missing_image_offline_names_the_step_and_what_to_do(
    mock_bootloader, deployment: Deployment
) -> None:
    _pin(deployment, "esp32", url="http://127.0.0.1:9/unreachable.bin", sha256="ab" * 32)
    mock = mock_bootloader("esp32")
    with pytest.raises(StepError) as err:
        step_micropython(_run(deployment, mock.url, "mostar-01"))
    assert err.value.step == "micropython" and "download failed" in err.value.seen
    assert "online" in err.value.hint or "internet" in err.value.hint


def test_baud_rate_falls_back_until_the_link_holds(
    mock_bootloader, lossy_cable, deployment: Deployment, test_image: bytes, tmp_path: Path
) -> None:
    image = tmp_path / "mp.bin"
    image.write_bytes(test_image)
    _pin(deployment, "esp32", image=str(image))
    mock = mock_bootloader("esp32")
    cable = lossy_cable(mock.port, max_baud=230400)
    run = _run(deployment, cable.url, "mostar-01")
    run.bauds = (921600, 460800, 230400, 115200)

    summary = step_micropython(run)

    assert cable.dropped == [921600, 460800]
    assert cable.requested[-1] == 230400
    assert "230400 baud (fell back from 921600)" in summary
    assert _flash_md5(mock.url, 0x1000, len(test_image)) == hashlib.md5(test_image).hexdigest()


def test_wrong_chip_for_the_board_profile_is_refused(
    mock_bootloader, deployment: Deployment, test_image: bytes, tmp_path: Path
) -> None:
    image = tmp_path / "mp.bin"
    image.write_bytes(test_image)
    _pin(deployment, "esp32s3", image=str(image))
    mock = mock_bootloader("esp32s3")  # an S3 on the port, but mostar-01 is a bench-v1 (ESP32)
    with pytest.raises(StepError) as err:
        step_micropython(_run(deployment, mock.url, "mostar-01"))
    assert err.value.step == "detect" and err.value.seen == "ESP32-S3"
