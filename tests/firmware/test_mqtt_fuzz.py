"""Host-only: hypothesis throws arbitrary bytes at the firmware's MQTT parser."""

from __future__ import annotations

from bench import mqtt
from hypothesis import given
from hypothesis import strategies as st


@given(st.integers(0, 255), st.binary(max_size=64))
def test_any_packet_parses_or_raises_mqtt_error(first: int, body: bytes) -> None:
    try:
        mqtt.parse(first, body)
    except mqtt.MQTTError:
        pass


@given(st.integers(0, 268435455))
def test_remaining_length_round_trips(n: int) -> None:
    enc = mqtt.encode_length(n)
    assert mqtt.decode_length(b"\x30" + enc) == (n, 1 + len(enc))
    assert len(enc) == 1 + (n > 127) + (n > 16383) + (n > 2097151)
