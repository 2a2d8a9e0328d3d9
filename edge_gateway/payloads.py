"""The payloads of docs/protocol.md (version 1) as msgspec Structs: their fields and JSON types.

msgspec decodes a payload into these in one pass; the rules it cannot express (integers
written as ``-61.0``, decimals, ranges, the ``ts`` window) are :mod:`edge_gateway.protocol`'s.
"""

from __future__ import annotations

from typing import Any

import msgspec

Num = int | float  # JSON numbers as decoded; the integer rule is checked after decoding.


class Solar(msgspec.Struct):
    v: float
    a: float
    wh: float


class Batt(msgspec.Struct):
    v: float
    a: float
    soc: float


class Port(msgspec.Struct):
    n: Num
    on: bool
    plug: bool
    a: float
    wh: float


class Wifi(msgspec.Struct):
    rssi: Num
    clients: Num


class Seat(msgspec.Struct):
    occ: Num


class Touch(msgspec.Struct):
    n: Num


class Env(msgspec.Struct):
    t: float
    rh: float


class Envelope(msgspec.Struct):
    v: Num
    bench: str
    boot: Num
    seq: Num
    ts: Num


class Telemetry(Envelope):
    period: Num
    solar: Solar
    batt: Batt
    ports: list[Port]
    wifi: Wifi
    seat: Seat
    touch: Touch
    power: str
    heap: Num
    env: Env | None = None


# An event's extra fields, one link per type of docs/protocol.md's Events table, in the order they
# are written. msgspec allows only one base with fields, so the links form a chain and Event is
# its end; every field is optional here, and _check_event requires those of the event's type.
class _BootFields(Envelope):
    type: str
    reset: str | None = None
    fw: str | None = None
    safe: bool | None = None


class _SessionFields(_BootFields):
    port: Num | None = None
    s: Num | None = None
    wh: float | None = None


class _PowerFields(_SessionFields):
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None


class _FaultFields(_PowerFields):
    code: str | None = None
    detail: str | None = None  # also a failed ota's reason, and a tamper's


class _ClockFields(_FaultFields):
    offset: Num | None = None


class _OtaFields(_ClockFields):
    state: str | None = None
    version: str | None = None


class Event(_OtaFields):
    """A record with a ``type`` and the extra fields of that type (the last link: tamper's)."""

    kind: str | None = None


class Vote(Envelope):
    poll: str
    choice: str


class CommandAck(Envelope):
    id: str
    ok: bool
    detail: str = ""


class Status(msgspec.Struct):
    v: Num
    bench: str
    state: str
    boot: Num | None = None
    fw: str | None = None
    mpy: str | None = None
    ts: Num | None = None
    until: Num | None = None


class Command(msgspec.Struct):
    id: str
    op: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


# A text per language: `bs` required, `hr`, `sr`, `en` optional; a bench shows any other
# language it is given too, so every one is held to the same rules.
Text = dict[str, str]


class PollOption(msgspec.Struct):
    id: str
    label: Text


class Poll(msgspec.Struct, omit_defaults=True):
    v: Num
    id: str | None
    opens: Num | None = None
    closes: Num | None = None
    question: Text | None = None
    options: list[PollOption] | None = None


Message = Telemetry | Event | Vote | CommandAck | Status
