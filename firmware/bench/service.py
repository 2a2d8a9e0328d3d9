# The technician's service screen, shown for 60 s when the two outer pads are held together
# for 5 s (bench.touch): bench id and boot number, firmware version, Wi-Fi signal, broker,
# records waiting on flash, last fault; in the language the display is showing. Imported
# when the gesture is made: its strings are not resident.
from bench import font

# version, Wi-Fi, broker, connected, not connected, waiting, fault, none
LABELS = {
    "bs": ("Verzija", "Wi-Fi", "Broker", "spojen", "nije spojen", "Na čekanju", "Greška", "nema"),
    "hr": ("Verzija", "Wi-Fi", "Broker", "spojen", "nije spojen", "Na čekanju", "Pogreška", "nema"),
    "sr": ("Верзија", "Wi-Fi", "Брокер", "повезан", "није повезан", "На чекању", "Грешка", "нема"),
    "srl": (
        "Verzija",
        "Wi-Fi",
        "Broker",
        "povezan",
        "nije povezan",
        "Na čekanju",
        "Greška",
        "nema",
    ),
    "en": ("Version", "Wi-Fi", "Broker", "connected", "not connected", "Waiting", "Fault", "none"),
}
_COLS = 21


def lines(info, lang):
    # The five lines under the title bar, each cut to the display's 21 columns.
    t = LABELS.get(lang) or LABELS["bs"]
    rssi = info["rssi"]
    wifi = "---" if rssi is None or rssi <= -127 else "%d dBm" % rssi
    fault = info["fault"] or t[7]
    out = (
        "%s %s" % (t[0], info["fw"]),
        "%s %s" % (t[1], wifi),
        "%s: %s" % (t[2], t[3] if info["broker"] else t[4]),
        "%s: %d" % (t[5], info["spool"]),
        "%s: %s" % (t[6], fault),
    )
    return [s[:_COLS] for s in out]


def title(info):
    # Bench id left, "#<boot number>" right, on the inverted bar.
    return info["bench"], "#%d" % info["boot"]


def draw(screens, info, lang):
    d = screens.d
    d.fill(0)
    d.fill_rect(0, 0, d.width, 12, 1)
    name, boot = title(info)
    bw = font.text_width(boot)
    screens._text(2, 1, name[: (d.width - bw - 8) // 6], 0)
    screens._text(d.width - 2 - bw, 1, boot, 0)
    y = 13
    for line in lines(info, lang):
        screens._text(0, y, line)
        y += 10
    d.show()
