"""Bench-made text made safe for a log line or a terminal."""

from __future__ import annotations

import unicodedata


def printable(value: object, limit: int = 120) -> str:
    """``value`` as one line with no terminal control: controls, bidi overrides and other
    format characters are written as ``\\xNN``/``\\uNNNN`` escapes; cut to ``limit``."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cat in ("Zl", "Zp"):  # Cc, Cf (bidi), Cs, Co, Cn; line breaks
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return "".join(out)
