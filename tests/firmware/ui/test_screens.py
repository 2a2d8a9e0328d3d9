"""The screens as the glass shows them: golden PNGs compared pixel by pixel, and the UI flow.

Goldens are 1-bit 128x64 PNGs in golden/. After a deliberate change to the look, regenerate
them with `KLUPA_UPDATE_GOLDENS=1 pytest tests/firmware/ui` and review the pictures (the same
run refreshes docs/img/display-*.png).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bench import voting as voting_rules
from bench.screens import Screens, Ui, local_hhmm, wrap
from bench.voting import Voting
from drivers.ssd1306 import SSD1306

from boards.virtual.display import SSD1306Model, load_png_pixels, save_png
from testkit.polls import poll_options, protocol_poll

GOLDEN = Path(__file__).parent / "golden"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "img"
UPDATE = os.environ.get("KLUPA_UPDATE_GOLDENS") == "1"
TS = 1795712460  # 2026-11-26 17:01 UTC, 18:01 in Sarajevo

OPEN = (TS - 86400, TS + 86400)  # the polls' opens and closes: a day either side of TS

POLL_LATIN = protocol_poll(
    "zepce-2026-cesma",
    *OPEN,
    question={
        "bs": "Čačak ili Ćićevac? Šuma, žuto, Đurđevak: ČĆŠŽĐ šta želite u parku?",
        "en": "What do you want in the park?",
    },
    options=poll_options(
        ("cesma", {"bs": "Česma", "en": "Fountain"}),
        ("klupe", {"bs": "Klupe", "en": "Benches"}),
        ("svjetla", {"bs": "Svjetla", "en": "Lights"}),
    ),
)
POLL_CYRILLIC = protocol_poll(
    "trebinje-2026-park",
    *OPEN,
    question={
        "bs": "Da li želite više rasvjete u parku?",
        "sr": "Да ли желите више расвјете у парку? Ђурђевдан, Љубиње, Његош, Џеп, Ћуприја.",
    },
    options=poll_options(("da", {"bs": "Da", "sr": "Да"}), ("ne", {"bs": "Ne", "sr": "Не"})),
)
POLL_LONG = protocol_poll(
    "mostar-2026-trg",
    *OPEN,
    question={
        "bs": "Šta bi najviše poboljšalo ovaj trg: više hlada i drveća, češće čišćenje, "
        "javna česma s pitkom vodom ili bolja rasvjeta noću?",
    },
    options=poll_options(
        ("hlad", {"bs": "Hlad i drveće"}),
        ("cisto", {"bs": "Češće čišćenje"}),
        ("voda", {"bs": "Česma s vodom"}),
        ("svjetlo", {"bs": "Rasvjeta noću"}),
    ),
)


class Bus:
    """Just enough of machine.I2C for the display: one SSD1306 model at 0x3C."""

    def __init__(self, model: SSD1306Model, addr: int = 0x3C) -> None:
        self.model = model
        self.addr = addr

    def writeto(self, addr: int, buf: bytes) -> None:
        if addr != self.addr:
            raise OSError(19, "ENODEV")
        self.model.i2c_write(bytes(buf))


@pytest.fixture
def glass() -> tuple[SSD1306Model, Screens]:
    model = SSD1306Model()
    return model, Screens(SSD1306(Bus(model)))


def check_golden(model: SSD1306Model, name: str, doc: str | None = None) -> None:
    path = GOLDEN / (name + ".png")
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        save_png(model, path)
        if doc:
            save_png(model, DOCS / ("display-" + doc + ".png"), scale=4)
    assert path.exists(), f"no golden {path.name}; run with KLUPA_UPDATE_GOLDENS=1"
    want = load_png_pixels(path)
    got = model.pixels()
    if got != want:
        diff = sum(
            a != b for r1, r2 in zip(got, want, strict=True) for a, b in zip(r1, r2, strict=True)
        )
        pytest.fail(
            f"{name}: {diff} pixels differ from the golden\n" + "\n".join(model.text_rows())
        )


def test_poll_in_cyrillic(glass: tuple[SSD1306Model, Screens]) -> None:
    model, s = glass
    s.poll(POLL_CYRILLIC, "sr")
    check_golden(model, "poll-cyrillic", "poll-cyrillic")


def test_poll_with_all_ten_latin_diacritics(glass: tuple[SSD1306Model, Screens]) -> None:
    model, s = glass
    q = POLL_LATIN["question"]["bs"]
    assert all(ch in q or ch.upper() in q for ch in "čćđšž")
    assert all(ch in q for ch in "čćđšžČĆĐŠŽ")
    s.poll(POLL_LATIN, "bs")
    check_golden(model, "poll-latin", "poll-latin")


def test_long_question_scrolls_and_four_options_get_a_line_each(
    glass: tuple[SSD1306Model, Screens],
) -> None:
    model, s = glass
    positions = s.poll(POLL_LONG, "bs", 0)
    lines = wrap(POLL_LONG["question"]["bs"])
    assert positions == len(lines) - 2 + 1 > 1
    check_golden(model, "poll-scroll-0")
    s.poll(POLL_LONG, "bs", positions - 1)
    check_golden(model, "poll-scroll-end", "poll-scroll")


def test_confirmation_names_the_chosen_option(glass: tuple[SSD1306Model, Screens]) -> None:
    model, s = glass
    s.confirmation(POLL_CYRILLIC, 1, "sr")
    check_golden(model, "confirmation-sr", "confirmation")
    s.confirmation(POLL_LATIN, 0, "bs")
    check_golden(model, "confirmation-bs")


def test_try_later(glass: tuple[SSD1306Model, Screens]) -> None:
    model, s = glass
    s.try_later(POLL_LATIN, "bs")
    check_golden(model, "try-later", "try-later")


def test_idle(glass: tuple[SSD1306Model, Screens]) -> None:
    model, s = glass
    s.idle("zepce", 78.4, 3, TS, "bs", POLL_LATIN)
    check_golden(model, "idle", "idle")
    s.idle("trebinje", 41.0, 2, TS, "sr", POLL_CYRILLIC)
    check_golden(model, "idle-sr")


def test_low_power(glass: tuple[SSD1306Model, Screens]) -> None:
    model, s = glass
    s.low_power(POLL_LATIN, "bs")
    check_golden(model, "low-power", "low-power")


SERVICE = {
    "bench": "trebinje-01",
    "boot": 42,
    "fw": "2.1.0",
    "rssi": -67,
    "broker": True,
    "spool": 1234,
    "fault": "touch_wet",
}


def test_service_screen(glass: tuple[SSD1306Model, Screens]) -> None:
    from bench import service

    model, s = glass
    service.draw(s, SERVICE, "bs")
    check_golden(model, "service", "service")
    rows = service.lines(SERVICE, "bs")
    assert rows == [
        "Verzija 2.1.0",
        "Wi-Fi -67 dBm",
        "Broker: spojen",
        "Na čekanju: 1234",
        "Greška: touch_wet",
    ]


def test_service_screen_in_cyrillic_offline_without_faults(
    glass: tuple[SSD1306Model, Screens],
) -> None:
    from bench import service

    model, s = glass
    info = dict(SERVICE, rssi=-127, broker=False, fault=None)
    service.draw(s, info, "sr")
    check_golden(model, "service-sr", "service-sr")
    assert service.lines(info, "sr")[1:] == [
        "Wi-Fi ---",
        "Брокер: није повезан",
        "На чекању: 1234",
        "Грешка: нема",
    ]


def test_service_lines_fit_the_glass_in_every_language() -> None:
    from bench import service

    info = dict(SERVICE, fw="10.20.30-rc.1", spool=123456, fault="crash: OSError 28 @ a.py:1")
    for lang in ("bs", "hr", "sr", "srl", "en"):
        assert all(len(line) <= 21 for line in service.lines(info, lang))


def test_self_test_pattern(glass: tuple[SSD1306Model, Screens]) -> None:
    model, s = glass
    s.test_pattern()
    check_golden(model, "test-pattern")


def test_local_time_follows_central_european_summer_time() -> None:
    assert local_hhmm(TS) == "18:01"  # November: CET
    assert local_hhmm(1784030400) == "14:00"  # 2026-07-14 12:00 UTC: CEST
    assert local_hhmm(1774746000 - 1) == "01:59"  # 2026-03-29 00:59:59 UTC, before the switch
    assert local_hhmm(1774746000) == "03:00"


def test_driver_initialises_the_chip_so_the_glass_lights_upright() -> None:
    model = SSD1306Model()
    d = SSD1306(Bus(model))
    assert model.lit and model.mode == 0 and model.seg_remap and model.com_reversed
    d.pixel(0, 0, 1)
    d.pixel(127, 63, 1)
    d.show()
    px = model.pixels()
    assert px[0][0] and px[63][127]
    assert sum(map(sum, px)) == 2


def test_model_decodes_page_addressing_and_single_command_control_bytes() -> None:
    model = SSD1306Model()
    model.i2c_write(bytes([0x80, 0x8D, 0x80, 0x14, 0x80, 0xAF, 0x80, 0xA1, 0x80, 0xC8]))
    model.i2c_write(bytes([0x00, 0xB3, 0x05, 0x11]))  # page mode: page 3, column 0x15
    model.i2c_write(bytes([0x40, 0x01, 0x80]))
    px = model.pixels()
    assert px[24][21] and px[31][22]
    assert sum(map(sum, px)) == 2


# -- the UI flow ----------------------------------------------------------------------
class Rig:
    def __init__(self, tmp: Path, poll: dict[str, Any] | None) -> None:
        self.ms = 1000
        self.ts = TS
        self.votes: list[tuple[str, str]] = []
        self.model = SSD1306Model()
        self.screens = Screens(SSD1306(Bus(self.model)))
        self.voting = Voting(
            str(tmp / "poll.json"),
            lambda: self.ts,
            lambda: self.ms,
            lambda p, c: self.votes.append((p, c)),
            lambda code, detail: None,
            {},
        )
        self.ui = Ui(
            self.screens, self.voting, lambda: ("zepce", 77.0, 3, self.ts), lambda: self.ms
        )
        if poll is not None:
            self.ui.on_poll(json.dumps(poll).encode())
        else:
            self.ui.redraw()

    def wait(self, ms: int, tick: Callable[[], None] | None = None) -> None:
        end = self.ms + ms
        while self.ms < end:
            self.ms += 100
            self.ts = TS + (self.ms - 1000) // 1000
            self.ui.tick()


def same_as(model: SSD1306Model, draw: Callable[[Screens], object]) -> bool:
    other = SSD1306Model()
    draw(Screens(SSD1306(Bus(other))))
    return other.pixels() == model.pixels()


def test_press_shows_confirmation_for_3_s_then_the_poll(tmp_path: Path) -> None:
    r = Rig(tmp_path, POLL_CYRILLIC)
    assert r.ui.mode == "poll"
    r.ui.on_touch("press", 1)
    assert r.votes == [("trebinje-2026-park", "ne")]
    assert same_as(r.model, lambda s: s.confirmation(POLL_CYRILLIC, 1, "bs"))
    r.wait(2900)
    assert r.ui.mode == "confirm"
    r.wait(200)
    assert r.ui.mode == "poll"
    assert same_as(r.model, lambda s: s.poll(POLL_CYRILLIC, "bs"))


def test_presses_in_cooldown_are_not_votes_and_the_cap_shows_try_later(tmp_path: Path) -> None:
    r = Rig(tmp_path, POLL_LATIN)
    r.voting.settings["vote_cap"] = 1
    r.ui.on_touch("press", 0)
    r.wait(5000)
    r.ui.on_touch("press", 0)
    assert len(r.votes) == 1 and r.ui.mode == "poll"
    r.wait(9000)
    r.ui.on_touch("press", 2)
    assert len(r.votes) == 1 and r.ui.mode == "later"
    assert same_as(r.model, lambda s: s.try_later(POLL_LATIN, "bs"))


def test_hold_cycles_the_language_among_the_polls(tmp_path: Path) -> None:
    r = Rig(tmp_path, POLL_CYRILLIC)
    r.ui.on_touch("hold", 0)
    assert r.ui.lang() == "sr"
    assert same_as(r.model, lambda s: s.poll(POLL_CYRILLIC, "sr"))
    r.ui.on_touch("hold", 3)
    assert r.ui.lang() == "bs"
    r.ui.on_touch("press", 0)
    assert r.votes == [("trebinje-2026-park", "da")]


def test_idle_without_a_poll_and_poll_closing_returns_to_idle(tmp_path: Path) -> None:
    r = Rig(tmp_path, None)
    assert r.ui.mode == "idle"
    r.ui.on_poll(json.dumps(POLL_LATIN).encode())
    assert r.ui.mode == "poll"
    r.ui.on_poll(b'{"v":1,"id":null}')
    assert r.ui.mode == "idle"
    assert same_as(r.model, lambda s: s.idle("zepce", 77.0, 3, TS, "bs"))


def test_long_question_scrolls_every_two_seconds(tmp_path: Path) -> None:
    r = Rig(tmp_path, POLL_LONG)
    assert same_as(r.model, lambda s: s.poll(POLL_LONG, "bs", 0))
    r.wait(2100)
    assert same_as(r.model, lambda s: s.poll(POLL_LONG, "bs", 1))


def test_dim_in_saver_off_in_critical_and_woken_by_touch(tmp_path: Path) -> None:
    r = Rig(tmp_path, POLL_LATIN)
    assert r.model.lit and r.model.contrast == 0xCF
    r.ui.set_power("saver")
    assert r.model.lit and r.model.contrast == 0x08
    r.ui.set_power("critical")
    assert not r.model.lit
    r.ui.on_touch("down", 0)
    assert r.model.lit
    r.ui.on_touch("press", 0)
    assert r.votes and r.ui.mode == "confirm"
    r.wait(31000)
    assert not r.model.lit
    r.ui.set_power("normal")
    assert r.model.lit and r.model.contrast == 0xCF


def test_low_power_notice_in_critical_without_an_open_poll(tmp_path: Path) -> None:
    r = Rig(tmp_path, None)
    r.ui.set_power("critical")
    assert r.ui.mode == "low"
    assert voting_rules.CLOSED == r.voting.press(0)[0]
