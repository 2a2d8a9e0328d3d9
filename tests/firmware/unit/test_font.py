# Font coverage: every letter of the three alphabets has a glyph of its own.
# Runs under pytest (CPython) and inside the MicroPython VM.
import sys
import unittest

if sys.implementation.name != "micropython":
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "firmware"))

from bench import font, fontdata

LATIN_UPPER = "ABCČĆDĐEFGHIJKLMNOPRSŠTUVZŽQWXY"
LATIN_LOWER = "abcčćdđefghijklmnoprsštuvzžqwxy"
CYRILLIC_UPPER = "АБВГДЂЕЖЗИЈКЛЉМНЊОПРСТЋУФХЦЧЏШ"
CYRILLIC_LOWER = "абвгдђежзијклљмнњопрстћуфхцчџш"
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))


class FontCoverage(unittest.TestCase):
    def test_serbian_cyrillic_alphabet_is_thirty_letters_each_case(self):
        self.assertEqual(len(CYRILLIC_UPPER), 30)
        self.assertEqual(len(CYRILLIC_LOWER), 30)

    def test_every_printable_ascii_character_has_a_glyph(self):
        for ch in ASCII:
            self.assertTrue(font.has_glyph(ch), repr(ch))

    def test_every_latin_and_cyrillic_letter_has_a_glyph_not_the_box(self):
        box = font.columns("\u20ac")  # the euro sign is not in the font
        self.assertFalse(font.has_glyph("\u20ac"))
        for ch in LATIN_UPPER + LATIN_LOWER + CYRILLIC_UPPER + CYRILLIC_LOWER:
            self.assertTrue(font.has_glyph(ch), ch)
            self.assertNotEqual(font.columns(ch), box, ch)
            self.assertTrue(any(font.columns(ch)), ch)

    def _assert_distinct(self, letters):
        seen = {}
        for ch in letters:
            cols = font.columns(ch)
            self.assertFalse(cols in seen, ch + " looks like " + seen.get(cols, ""))
            seen[cols] = ch

    def test_latin_letters_all_differ_from_each_other(self):
        self._assert_distinct(LATIN_UPPER + LATIN_LOWER)

    def test_cyrillic_letters_all_differ_from_each_other(self):
        self._assert_distinct(CYRILLIC_UPPER + CYRILLIC_LOWER)

    def test_diacritic_letters_differ_from_their_base_letter(self):
        for marked, base in (
            ("Č", "C"),
            ("Ć", "C"),
            ("Š", "S"),
            ("Ž", "Z"),
            ("Đ", "D"),
            ("č", "c"),
            ("ć", "c"),
            ("š", "s"),
            ("ž", "z"),
            ("đ", "d"),
        ):
            self.assertNotEqual(font.columns(marked), font.columns(base), marked)

    def test_caron_and_acute_differ(self):
        self.assertNotEqual(font.columns("Č"), font.columns("Ć"))
        self.assertNotEqual(font.columns("č"), font.columns("ć"))

    def test_index_is_sorted_so_binary_search_finds_every_code_point(self):
        cps = fontdata.CODEPOINTS
        prev = -1
        for i in range(len(cps) // 2):
            cp = (cps[2 * i] << 8) | cps[2 * i + 1]
            self.assertTrue(cp > prev)
            prev = cp
            self.assertEqual(font.glyph_number(cp), fontdata.GLYPH[i])


class DrawText(unittest.TestCase):
    def test_a_glyph_lands_in_the_buffer_column_by_column(self):
        buf = bytearray(128 * 8)
        x = font.draw_text(buf, 128, 64, 10, 3, "Ж")
        self.assertEqual(x, 10 + fontdata.ADVANCE)
        cols = font.columns("Ж")
        for c in range(5):
            got = 0
            for page in range(8):
                got |= buf[page * 128 + 10 + c] << (8 * page)
            self.assertEqual(got, cols[c] << 3)

    def test_drawing_clips_at_the_edges_without_error(self):
        buf = bytearray(128 * 8)
        font.draw_text(buf, 128, 64, 125, 60, "ŠŠ")
        font.draw_text(buf, 128, 64, -3, -4, "Ш")
        self.assertTrue(any(buf))
        self.assertEqual(len(buf), 1024)

    def test_colour_zero_clears_the_glyph_pixels(self):
        buf = bytearray(b"\xff" * 1024)
        font.draw_text(buf, 128, 64, 0, 0, "I")
        self.assertEqual(buf[2], 0xFF)
        font.draw_text(buf, 128, 64, 0, 0, "I", 0)
        self.assertNotEqual(buf[2], 0xFF)


if __name__ == "__main__":
    unittest.main()
