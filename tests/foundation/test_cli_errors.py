"""Every command's usage error is one line on stderr with exit status 2 (docs/interfaces.md:
"Errors are one clear line on stderr, never a bare traceback")."""

from __future__ import annotations

import pytest

from klupa.cli import main


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["gateway", "run"], "--config"),
        (["gateway", "bogus"], "bogus"),
        (["sim", "--broker", "nonsense"], "HOST:PORT"),
        (["sim", "--broker", "localhost:99999"], "HOST:PORT"),
        (["demo", "--speed", "fast"], "--speed"),
        (["portal", "serve", "--port", "http"], "--port"),
        (["provision", "--bogus"], "COMMAND"),
        (["bundle", "--bogus"], "--bogus"),
        (["fleet", "ota", "rollout", "--bundle", "b"], "--canary"),
        (["fleet", "ota", "rollout", "--bundle", "b", "--canary", "m-01", "--then", "x"], "--then"),
        (["gateway", "ota", "rollout", "--config", "c", "--bundle", "b"], "--canary"),
    ],
)
def test_a_usage_error_is_one_line_naming_what_is_wrong(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code  # type: ignore[assignment]
    assert code == 2
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert names in lines[0] and "error" in lines[0]
    assert "Traceback" not in out.err and out.out == ""
