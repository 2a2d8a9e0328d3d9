"""The firmware's copy of the contract is klupa.contract's, value for value.

The firmware ships alone (it imports nothing outside firmware/), so it keeps its own copy of
the names, the settable ranges, the municipalities' names, the poll rules and the topics.
Each test here reads the bench's copy (imported into CPython, where it runs too) and holds it
to the host's one copy, so a change on either side alone fails here.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from klupa import contract
from klupa.contract.datafile import DataFile, DataFileError
from testkit.vm import FIRMWARE_DIR, firmware_module

# Characters either side might treat differently: the allowed ones, their neighbours in
# ASCII, capitals, an underscore and letters outside ASCII.
NAMEISH = st.text(alphabet="abyz09-_AZ`{/.žćЖ ", max_size=70)


def _boundary_names(lo: int, hi: int) -> list[str]:
    out = []
    for n in (lo - 1, lo, hi, hi + 1):
        out += ["a" * n, "a" + "-" * (n - 1), "a" + "9" * (n - 1), "9" + "a" * (n - 1)]
    return out


def _bench_config(bench: str, municipality: str) -> dict[str, Any]:
    return {
        "bench": bench,
        "municipality": municipality,
        "wifi": {"ssid": "klupa"},
        "mqtt": {"host": "gw.local"},
    }


def _firmware_accepts(bench: str = "zepce-01", municipality: str = "zepce") -> bool:
    config = firmware_module("bench.config")
    try:
        config.validate_config(_bench_config(bench, municipality))
    except config.ConfigError:
        return False
    return True


# --------------------------------------------------------------------------- names


def test_the_name_patterns_say_the_lengths_the_contract_names() -> None:
    for rule, (lo, hi) in (
        (contract.MUNICIPALITY_RE, contract.MUNICIPALITY_LEN),
        (contract.BENCH_RE, contract.BENCH_LEN),
        (contract.POLL_ID_RE, contract.POLL_ID_LEN),
        (contract.OPTION_ID_RE, contract.OPTION_ID_LEN),
    ):
        assert rule.pattern.endswith(f"{{{lo - 1},{hi - 1}}}$"), rule.pattern
        assert rule.fullmatch("a" * lo) and rule.fullmatch("a" * hi)
        assert not rule.fullmatch("a" * (lo - 1)) and not rule.fullmatch("a" * (hi + 1))


def test_the_bench_takes_exactly_the_bench_and_municipality_ids_the_contract_allows() -> None:
    for name in _boundary_names(*contract.BENCH_LEN):
        want = contract.BENCH_RE.fullmatch(name) is not None
        assert _firmware_accepts(bench=name) == want, name
    for name in _boundary_names(*contract.MUNICIPALITY_LEN):
        want = contract.MUNICIPALITY_RE.fullmatch(name) is not None
        assert _firmware_accepts(municipality=name) == want, name


@settings(max_examples=300, deadline=None)
@given(name=NAMEISH)
def test_the_bench_judges_any_id_as_the_contract_does(name: str) -> None:
    assert _firmware_accepts(bench=name) == (contract.BENCH_RE.fullmatch(name) is not None)
    assert _firmware_accepts(municipality=name) == (
        contract.MUNICIPALITY_RE.fullmatch(name) is not None
    )


def test_every_launch_municipality_id_keeps_the_name_rule_and_no_bench_takes_a_reserved_name() -> (
    None
):
    for mid in contract.MUNICIPALITY_IDS:
        assert contract.MUNICIPALITY_RE.fullmatch(mid), mid
        assert contract.BENCH_RE.fullmatch(f"{mid}-01"), mid
    users = {contract.gateway_user("mostar"), contract.ops_user("mostar")}
    assert users == {"gateway-mostar", "ops-mostar"}
    assert all(u.startswith(contract.RESERVED_PREFIXES) for u in users)


# --------------------------------------------------------------------------- municipalities


def test_the_bench_writes_each_municipality_as_the_contract_does_in_both_scripts() -> None:
    screens = firmware_module("bench.screens")
    host = {m.id: (m.name, m.cyrillic) for m in contract.MUNICIPALITIES.values()}
    assert list(screens.NAMES.items()) == list(host.items())


def test_the_cyrillic_names_are_the_latin_ones_transliterated() -> None:
    # The portal's sr-Cyrl pages wrote each name through its transliteration before the
    # names came here: the contract's Cyrillic must be what that gives.
    from portal.i18n import place_name, to_cyrillic

    for m in contract.MUNICIPALITIES.values():
        assert to_cyrillic(m.name) == m.cyrillic, m.id
        assert place_name(m.id, "sr-Cyrl") == m.cyrillic and place_name(m.id, "bs") == m.name


def test_the_twelve_municipalities_lie_in_bosnia_and_herzegovina() -> None:
    # The country's extent, roughly 42.55-45.28 N and 15.72-19.62 E: a swapped or mistyped
    # coordinate lands outside it (the virtual sun, the map and the inventory read these).
    assert len(contract.MUNICIPALITIES) == 12
    for m in contract.MUNICIPALITIES.values():
        assert 42.55 <= m.lat <= 45.28 and 15.72 <= m.lon <= 19.62, m


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("lat = 44.4239", 'lat = "44.4239"', "municipalities[4].lat"),
        ("lon = 18.0994, ", "", "municipalities[5].lon"),
        ('{ id = "maglaj"', '{ id = "mostar"', "municipalities[5].id"),
        (
            'lon = 18.1136, entity = "RS"',
            'lon = 18.1136, entity = "Srpska"',
            "municipalities[2].entity",
        ),
        ("max = 1000 }", "max = 1000, step = 1 }", "settable.vote_cap.step"),
        ("min = 1, max = 1000", "min = 1000, max = 1", "settable.vote_cap"),
        (
            "max = 100, fractional = true",
            "max = 100, fractional = 1",
            "settable.saver_soc.fractional",
        ),
    ],
)
def test_a_broken_contract_file_is_refused_naming_the_field(old: str, new: str, field: str) -> None:
    text = (resources.files("klupa.contract") / "contract.toml").read_text(encoding="utf-8")
    assert old in text
    data = DataFile("klupa/contract/contract.toml", text.replace(old, new, 1))
    with pytest.raises(DataFileError, match=re.escape(f"klupa/contract/contract.toml: {field}: ")):
        contract._municipalities(data)
        contract._settings(data)


# --------------------------------------------------------------------------- settings


def test_the_bench_may_be_set_exactly_what_the_gateway_sends_within_the_same_ranges() -> None:
    config = firmware_module("bench.config")
    assert config.SETTABLE == contract.SET_RANGES
    room = {"saver_soc": 101, "critical_soc": -1}  # no SoC cross-check in the way
    for key, (lo, hi) in contract.SET_RANGES.items():
        assert config.check_settings({key: lo}, room)[0] is None, key
        assert config.check_settings({key: hi}, room)[0] is None, key
        assert config.check_settings({key: lo - 1}, room)[0] is not None, key
        assert config.check_settings({key: hi + 1}, room)[0] is not None, key
        fraction_ok = config.check_settings({key: lo + 0.5}, room)[0] is None
        assert fraction_ok == (key in contract.SET_FRACTIONAL), key


# --------------------------------------------------------------------------- polls


def test_the_bench_checks_a_poll_with_the_contracts_limits() -> None:
    pollcheck = firmware_module("bench.pollcheck")
    voting = firmware_module("bench.voting")
    assert pollcheck._QUESTION_MAX == contract.QUESTION_MAX
    assert pollcheck._LABEL_MAX == contract.LABEL_MAX
    assert pollcheck._OPTIONS_MIN == contract.OPTIONS_MIN
    assert pollcheck._OPTIONS_MAX == contract.OPTIONS_MAX
    assert pollcheck._TIME_MAX == contract.TIME_MAX
    assert voting._POLL_MAX_BYTES == contract.MAX_POLL_PAYLOAD


@settings(max_examples=300, deadline=None)
@given(name=NAMEISH)
def test_the_bench_judges_any_poll_and_option_id_as_the_contract_does(name: str) -> None:
    pollcheck = firmware_module("bench.pollcheck")
    assert pollcheck.poll_id_ok(name) == (contract.POLL_ID_RE.fullmatch(name) is not None)
    assert pollcheck.option_id_ok(name) == (contract.OPTION_ID_RE.fullmatch(name) is not None)


def test_the_bench_judges_poll_and_option_ids_at_their_lengths_as_the_contract_does() -> None:
    pollcheck = firmware_module("bench.pollcheck")
    for name in _boundary_names(*contract.POLL_ID_LEN):
        assert pollcheck.poll_id_ok(name) == bool(contract.POLL_ID_RE.fullmatch(name)), name
    for name in _boundary_names(*contract.OPTION_ID_LEN):
        assert pollcheck.option_id_ok(name) == bool(contract.OPTION_ID_RE.fullmatch(name)), name


# --------------------------------------------------------------------------- payloads, topics


def test_the_bench_writes_the_contracts_topics_and_power_states() -> None:
    protocol = firmware_module("bench.protocol")
    assert protocol.ROOT == contract.ROOT + "/"
    assert protocol.POWER_STATES == contract.POWER_STATES
    for kind in (*contract.BENCH_KINDS, *contract.BENCH_READS):
        want = contract.topic("novi-grad", "novi-grad-01", kind)
        assert protocol.topic("novi-grad", "novi-grad-01", kind) == want
        assert want == f"klupa/v1/novi-grad/novi-grad-01/{kind}"
    # bench.link subscribes to the poll as ROOT + m + "/poll"
    assert protocol.ROOT + "zepce/poll" == contract.topic("zepce", None, "poll")


def test_every_leaf_the_bench_publishes_or_reads_is_a_contract_kind() -> None:
    source = "\n".join(p.read_text() for p in sorted((FIRMWARE_DIR / "bench").glob("*.py")))
    leaves = set(re.findall(r'base \+ "([a-z/]+)"', source))
    (records,) = re.findall(r"leaf = \(([^)]*)\)\[rec\.kind - 1\]", source)
    leaves |= set(re.findall(r'"([a-z/]+)"', records))
    assert leaves, "no topic leaf found in firmware/bench: the scan is stale"
    assert leaves <= {*contract.BENCH_KINDS, *contract.BENCH_READS}, leaves
    assert leaves >= {*contract.BENCH_KINDS, *contract.BENCH_READS}, leaves
