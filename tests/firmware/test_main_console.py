"""`main.run()` on the ESP32: Ctrl-C on the USB console stops the app and leaves the REPL (a
technician's mpremote, the HIL tests' serial bench); a crash resets the bench as before."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

from boards.virtual import firmware_path


def fake_main(monkeypatch: pytest.MonkeyPatch, app: Any) -> tuple[Any, list[int], list[str]]:
    firmware_path()
    import main  # type: ignore[import-not-found]

    resets: list[int] = []
    kept: list[str] = []
    machine = SimpleNamespace(reset_cause=lambda: 1, reset=lambda: resets.append(1))
    monkeypatch.setattr(main, "Hardware", lambda: SimpleNamespace(machine=machine))
    monkeypatch.setattr(main, "prepare", lambda root, cause: ("", None))
    monkeypatch.setattr(main, "forget_app", lambda: None)  # keep this process's modules
    monkeypatch.setattr(main, "start", app)
    monkeypatch.setattr(main, "keep_fault", lambda root, e: kept.append(repr(e)))
    monkeypatch.setattr(sys, "print_exception", lambda e: None, raising=False)
    return main, resets, kept


def test_ctrl_c_at_the_console_leaves_the_app_at_the_repl_without_a_reset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def interrupted(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt

    main, resets, kept = fake_main(monkeypatch, interrupted)
    main.run("/")
    assert resets == [] and kept == []
    assert main.STOPPED in capsys.readouterr().out


def test_an_app_that_crashes_keeps_its_fault_and_resets_the_bench(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def crashing(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("a bug")

    main, resets, kept = fake_main(monkeypatch, crashing)
    main.run("/")
    assert resets == [1] and kept == ["RuntimeError('a bug')"]
