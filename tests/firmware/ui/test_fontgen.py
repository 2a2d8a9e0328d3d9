"""The committed font table is exactly what the hand-drawn source generates."""

from __future__ import annotations

from pathlib import Path

from boards.virtual import fontgen

FONTDATA = Path(__file__).resolve().parents[3] / "firmware" / "bench" / "fontdata.py"


def test_fontdata_matches_its_source() -> None:
    assert FONTDATA.read_text(encoding="utf-8") == fontgen.source(), (
        "firmware/bench/fontdata.py is stale: "
        "run python -m boards.virtual.fontgen firmware/bench/fontdata.py"
    )


def test_every_glyph_row_is_five_pixels_and_accents_do_not_collide() -> None:
    for art in fontgen.ART.values():
        assert len(fontgen.rows_of(art)) == fontgen.HEIGHT
    for base, accent in fontgen.COMPOSED.values():
        assert len(fontgen.compose(base, accent)) == fontgen.HEIGHT
