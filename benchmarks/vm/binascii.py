# mypy: ignore-errors
# (MicroPython code, run inside the VM by the heap benchmarks; /tests is first on sys.path,
# so the firmware's `from binascii import crc32` finds this module.)
# A stand-in for the ESP32's binascii, which is C and costs the GC heap nothing. This port
# (the pyscript variant) has binascii as frozen Python whose import builds 3 KiB of tables
# and interns 45 one-character names, so measuring with it would charge the app for this
# port. The spool only needs crc32: the same CRC-32 (IEEE 802.3, zlib's), table-driven, in
# 16-bit halves so that no step allocates (this port's small ints have 31 bits); vmkit checks
# it against the standard check value before the benchmarks take their baseline.
from array import array

_LO = array("H", bytes(512))
_HI = array("H", bytes(512))
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _LO[_n] = _c & 0xFFFF
    _HI[_n] = _c >> 16


def crc32(data, crc=0):
    lo = (crc & 0xFFFF) ^ 0xFFFF
    hi = (crc >> 16) ^ 0xFFFF
    tl = _LO
    th = _HI
    for b in data:
        i = (lo ^ b) & 0xFF
        lo = tl[i] ^ ((hi & 0xFF) << 8) ^ (lo >> 8)
        hi = th[i] ^ (hi >> 8)
    return ((hi ^ 0xFFFF) << 16) | (lo ^ 0xFFFF)
