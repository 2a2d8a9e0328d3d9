"""`klupa fleet ota rollout`'s planning (`klupa.fleet`): stages across the municipalities, each
Pi's part of them and its command line, the fleet's state file, and what a Pi's JSON lines may
change. Pure functions: no Pi, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_gateway import rollout as R
from klupa import fleet as F
from klupa.contract import MUNICIPALITY_IDS

TWELVE = {f"{m}-01": m for m in MUNICIPALITY_IDS}
TWO_EACH = {"mostar-01": "mostar", "mostar-02": "mostar"} | {
    "jablanica-01": "jablanica",
    "jablanica-02": "jablanica",
}


def test_a_quarter_of_the_whole_fleet_follows_the_canary_then_all_the_rest() -> None:
    stages = F.plan("mostar-01", ["25%", "all"], TWELVE)
    # 11 benches left: 25 % is 3 (rounded up), taken in the contract's order of municipalities
    assert stages[0] == ["mostar-01"]
    assert stages[1] == ["jablanica-01", "nevesinje-01", "zavidovici-01"]
    assert len(stages) == 3 and len(stages[2]) == 8
    assert sorted(b for s in stages for b in s) == sorted(TWELVE)


def test_stages_take_every_municipality_s_first_bench_before_any_second() -> None:
    stages = F.plan("mostar-01", ["1", "all"], TWO_EACH)
    assert stages == [["mostar-01"], ["jablanica-01"], ["mostar-02", "jablanica-02"]]
    # a canary elsewhere: mostar's first bench still comes before any second one
    assert F.plan("jablanica-02", ["1", "all"], TWO_EACH)[1] == ["mostar-01"]


def test_a_canary_outside_the_inventory_or_only_is_refused() -> None:
    with pytest.raises(F.FleetError, match="trebinje-01 is not a bench"):
        F.plan("trebinje-01", ["all"], TWO_EACH)


def test_each_pi_gets_every_stage_with_its_own_benches_and_dashes_for_none() -> None:
    stages = F.plan("mostar-01", ["1", "all"], TWO_EACH)
    per_pi = F.split(stages, TWO_EACH)
    assert list(per_pi) == ["mostar", "jablanica"]  # the contract's order
    assert per_pi["mostar"] == [["mostar-01"], [], ["mostar-02"]]
    assert per_pi["jablanica"] == [[], ["jablanica-01"], ["jablanica-02"]]
    assert F.stage_arguments(per_pi["jablanica"]) == [
        "--stage",
        "-",
        "--stage",
        "jablanica-01",
        "--stage",
        "jablanica-02",
    ]


def test_a_pi_is_told_to_stop_at_the_fleet_s_stage_and_not_to_wait_before_the_last() -> None:
    pi = [["mostar-01"], [], ["mostar-02"]]
    args = F.pi_arguments(pi, 1, "/tmp/klupa-bundle-1.2.0", 600, no_wait=True, retry=False)
    assert args == [
        "--bundle",
        "/tmp/klupa-bundle-1.2.0",
        "--stage",
        "mostar-01",
        "--stage",
        "-",
        "--stage",
        "mostar-02",
        "--upto",
        "1",
        "--soak",
        "600s",
        "--json-lines",
        "--no-wait",
    ]
    last = F.pi_arguments(pi, 2, "/b", 15.5, no_wait=False, retry=True)
    assert last[-5:] == ["2", "--soak", "15.5s", "--json-lines", "--retry"]
    assert F.safe_words(args) == args


def test_only_pis_with_unfinished_benches_up_to_a_stage_take_part_in_it() -> None:
    st = F.new_state("1.2.0", "ab", "mostar-01", ["1", "all"], TWO_EACH)
    assert st.pis_for(0) == ["mostar"]
    assert st.pis_for(1) == ["mostar", "jablanica"]
    st.benches["mostar-01"].state = R.DONE
    assert st.pis_for(1) == ["jablanica"]  # mostar has nothing in stages 0 and 1 left
    st.benches["jablanica-01"].state = R.WAITING  # offline: asked again at the next stage
    assert st.pis_for(2) == ["mostar", "jablanica"]
    assert st.left_waiting() == ["jablanica-01"]


def test_a_pi_s_json_lines_change_only_its_own_benches() -> None:
    st = F.new_state("1.2.0", "ab", "mostar-01", ["all"], TWO_EACH)
    line = (
        '{"bench": "mostar-01", "detail": "acked; rebooting into it", "fw": "1.0.0", '
        '"rollout": 1, "since": 1800000000.0, "stage": 0, "state": "trial"}'
    )
    view = st.heard("mostar", line)
    assert view is not None and (view.state, view.fw, view.since) == ("trial", "1.0.0", 1.8e9)
    assert st.heard("mostar", line) is None  # nothing new
    assert st.heard("mostar", line.replace('"1.0.0"', '"1.2.0"')) is None  # no change line
    assert st.benches["mostar-01"].fw == "1.2.0"  # yet the table shows it
    assert st.heard("jablanica", line.replace("trial", "done")) is None  # not its bench
    assert st.benches["mostar-01"].state == "trial"
    for text in ("-- the canary: mostar-01", "{not json", '{"bench": "mostar-01"}', ""):
        assert st.heard("mostar", text) is None


def test_templates_fill_their_placeholders_word_by_word_and_name_an_unknown_one() -> None:
    values = {"m": "novi-grad", "host": "10.0.0.7", "remote": "/tmp/b-1", "bundle": "/x y/b"}
    words = F.expand("ssh -tt {host} sudo klupa --config '/etc/klupa/gateway-{m}.toml'", values)
    assert words == ["ssh", "-tt", "10.0.0.7", "sudo", "klupa", "--config"] + [
        "/etc/klupa/gateway-novi-grad.toml"
    ]
    assert F.expand("rsync -a {bundle}/ {host}:{remote}/", values)[2] == "/x y/b/"
    with pytest.raises(F.FleetError, match=r"no placeholder \{pi\}.*\{m\}, \{host\}"):
        F.expand("ssh {pi}", values)
    with pytest.raises(F.FleetError, match="would need quoting"):
        F.safe_words(["--bundle", "/tmp/a b"])


def test_the_state_file_keeps_the_plan_and_what_each_pi_said(tmp_path: Path) -> None:
    st = F.new_state("1.2.0+x", "ab", "mostar-01", ["1"], TWO_EACH)
    st.benches["jablanica-01"].state = R.SOAKING
    st.stage_done, st.halted = 0, ""
    path = F.state_path(tmp_path, st.version)
    assert path == tmp_path / "rollouts" / "rollout-1.2.0_x.json"
    F.save(path, st)
    again = F.load(path)
    assert again == st
    assert again is not None and again.municipalities == ["mostar", "jablanica"]
    table = F.table(again, 0.0).splitlines()
    assert table[0].split() == [
        "municipality",
        "bench",
        "stage",
        "state",
        "version",
        "since",
        "detail",
    ]
    assert table[1].split()[:4] == ["mostar", "mostar-01", "canary", "planned"]
    path.write_text("{")
    with pytest.raises(F.FleetError, match="move it away"):
        F.load(path)
