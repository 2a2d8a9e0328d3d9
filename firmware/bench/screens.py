# What a passer-by sees on the bench's 128x64 OLED: the open poll, the vote confirmation,
# "try again later", the idle screen and the low-power notice; and Ui, the small state
# machine that turns pad events into votes, language changes and redraws.
# The display is any object with buffer (MONO_VLSB bytearray), width, height, fill,
# fill_rect, show, contrast(level) and power(on): drivers/ssd1306.SSD1306 is one.
from bench import font
from bench.runtime import const, ticks_diff

_COLS = const(21)  # characters per line at 6 px
_LINE = const(10)  # pixel rows per text line
_CONFIRM_MS = const(3000)
_SCROLL_MS = const(2000)
_WAKE_MS = const(30000)  # display lit after a touch in `critical`
_SERVICE_MS = const(60000)  # the technician's service screen (bench.service)
_TRANSIENT = ("confirm", "later", "service")
CONTRAST = {"normal": 0xCF, "saver": 0x08}

# The strings the bench itself says, per language. `sr` is Cyrillic; `srl` is Serbian in
# Latin script, used when the poll writes `sr` in Latin letters.
TEXT = {
    "bs": (
        "Hvala!",
        "Vaš glas:",
        "Pokušajte ponovo kasnije.",
        "Baterija",
        "Slobodni punjači",
        "Baterija je skoro prazna.",
        "Dodirnite za glasanje.",
    ),
    "hr": (
        "Hvala!",
        "Vaš glas:",
        "Pokušajte ponovno kasnije.",
        "Baterija",
        "Slobodni punjači",
        "Baterija je skoro prazna.",
        "Dodirnite za glasanje.",
    ),
    "sr": (
        "Хвала!",
        "Ваш глас:",
        "Покушајте поново касније.",
        "Батерија",
        "Слободни пуњачи",
        "Батерија је скоро празна.",
        "Додирните за гласање.",
    ),
    "en": (
        "Thank you!",
        "Your vote:",
        "Please try again later.",
        "Battery",
        "Free chargers",
        "Battery is almost empty.",
        "Touch a pad to vote.",
    ),
}
TEXT["srl"] = TEXT["bs"]  # in Latin letters, Serbian says these as Bosnian does
_THANKS = 0
_YOUR_VOTE = 1
_TRY_LATER = 2
_BATTERY = 3
_FREE = 4
_LOW = 5
_TOUCH = 6

# The twelve municipalities' names as people write them (Latin, Cyrillic).
NAMES = {
    "mostar": ("Mostar", "Мостар"),
    "jablanica": ("Jablanica", "Јабланица"),
    "nevesinje": ("Nevesinje", "Невесиње"),
    "zavidovici": ("Zavidovići", "Завидовићи"),
    "zepce": ("Žepče", "Жепче"),
    "maglaj": ("Maglaj", "Маглај"),
    "prijedor": ("Prijedor", "Приједор"),
    "novi-grad": ("Novi Grad", "Нови Град"),
    "kostajnica": ("Kostajnica", "Костајница"),
    "trebinje": ("Trebinje", "Требиње"),
    "ravno": ("Ravno", "Равно"),
    "berkovici": ("Berkovići", "Берковићи"),
}


def is_cyrillic(text):
    for ch in text:
        if 0x400 <= ord(ch) < 0x530:
            return True
    return False


def ui_language(poll, lang):
    # The key of TEXT to use for a poll shown in `lang`.
    if lang == "sr" and poll is not None:
        q = poll["question"].get("sr", "")
        return "sr" if is_cyrillic(q) else "srl"
    return lang if lang in TEXT else "bs"


def pick(texts, lang):
    # A per-language dict from a poll: the language asked for, else Bosnian.
    s = texts.get(lang)
    return s if s is not None else texts.get("bs", "")


def wrap(text, cols=_COLS):
    # Word wrap to `cols` characters; a word longer than a line is broken.
    lines = []
    line = ""
    for word in text.split():
        while len(word) > cols:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cols])
            word = word[cols:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= cols:
            line = line + " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _days(y, m, d):
    # Days from 1970-01-01 to y-m-d.
    days = 0
    for yy in range(1970, y):
        days += 366 if (yy % 4 == 0 and yy % 100 != 0) or yy % 400 == 0 else 365
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    for mm in range(1, m):
        days += (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[mm - 1]
    return days + d - 1


def _last_sunday_0100(y, m):
    # Unix time of 01:00 UTC on the last Sunday of month m (March or October: 31 days).
    days = _days(y, m, 31)
    days -= (days + 4) % 7  # 1970-01-01 was a Thursday: (days + 4) % 7 == 0 on Sundays
    return days * 86400 + 3600


def local_hhmm(ts):
    # "HH:MM" in Bosnia and Herzegovina: CET, and CEST between the last Sundays of March and
    # October at 01:00 UTC (the EU rule). Plain arithmetic: ports differ in their epoch.
    days = ts // 86400
    y = 1970 + days // 366
    while _days(y + 1, 1, 1) <= days:
        y += 1
    off = 7200 if _last_sunday_0100(y, 3) <= ts < _last_sunday_0100(y, 10) else 3600
    sec = (ts + off) % 86400
    return "%02d:%02d" % (sec // 3600, (sec // 60) % 60)


class Screens:
    def __init__(self, display):
        self.d = display
        self.state = "normal"

    def _text(self, x, y, text, color=1):
        d = self.d
        return font.draw_text(d.buffer, d.width, d.height, x, y, text, color)

    def _centre(self, y, text, color=1):
        self._text((self.d.width - font.text_width(text)) // 2, y, text, color)

    def _pad_label(self, x, y, n, text):
        # The pad number in an inverted box, then the option's label.
        self.d.fill_rect(x, y, 7, _LINE, 1)
        self._text(x + 1, y, str(n), 0)
        self._text(x + 9, y, text)

    def _frame(self):
        d = self.d
        d.fill(0)
        d.fill_rect(0, 0, d.width, 1, 1)
        d.fill_rect(0, d.height - 1, d.width, 1, 1)
        d.fill_rect(0, 0, 1, d.height, 1)
        d.fill_rect(d.width - 1, 0, 1, d.height, 1)

    @staticmethod
    def option_rows(poll, lang):
        # Two options per line when every label fits half a line, else one per line.
        labels = [pick(o["label"], lang) for o in poll["options"]]
        if max(len(s) for s in labels) <= 9:
            return (len(labels) + 1) >> 1, labels
        return len(labels), labels

    def question_lines(self, poll, lang):
        rows, _ = self.option_rows(poll, lang)
        return wrap(pick(poll["question"], lang)), 6 - rows

    def poll(self, poll, lang, scroll=0):
        # The question (lines scroll..), a rule, then the options by pad. Returns the
        # number of scroll positions (1 when the question fits).
        d = self.d
        d.fill(0)
        rows, labels = self.option_rows(poll, lang)
        lines, room = self.question_lines(poll, lang)
        positions = max(1, len(lines) - room + 1)
        scroll = scroll % positions
        for i in range(min(room, len(lines) - scroll)):
            self._text(0, i * _LINE, lines[scroll + i])
        top = room * _LINE + 3
        d.fill_rect(0, top - 2, d.width, 1, 1)
        if positions > 1:  # scroll position on the rule's right end
            d.fill_rect(d.width - 9 + (8 * scroll) // (positions - 1), top - 3, 1, 3, 1)
        two = rows < len(labels)
        for i in range(len(labels)):
            if two:
                x, y = (i & 1) * 64, top + (i >> 1) * _LINE
                self._pad_label(x, y, i + 1, labels[i][:9])
            else:
                self._pad_label(0, top + i * _LINE, i + 1, labels[i][:19])
        d.show()
        return positions

    def confirmation(self, poll, index, lang):
        t = TEXT[ui_language(poll, lang)]
        self._frame()
        self._centre(6, t[_THANKS])
        self._centre(22, t[_YOUR_VOTE])
        label = pick(poll["options"][index]["label"], lang)[:19]
        w = 9 + font.text_width(label)
        self._pad_label((self.d.width - w) // 2, 40, index + 1, label)
        self.d.show()

    def try_later(self, poll, lang):
        t = TEXT[ui_language(poll, lang)]
        self._frame()
        lines = wrap(t[_TRY_LATER], 19)
        y = (self.d.height - len(lines) * _LINE) // 2
        for line in lines:
            self._centre(y, line)
            y += _LINE
        self.d.show()

    def idle(self, municipality, battery_pct, free_ports, ts, lang, poll=None):
        # Municipality and time on an inverted bar; battery with a gauge; free chargers.
        d = self.d
        t = TEXT[ui_language(poll, lang)]
        d.fill(0)
        d.fill_rect(0, 0, d.width, 12, 1)
        names = NAMES.get(municipality)
        name = municipality if names is None else names[1 if t is TEXT["sr"] else 0]
        self._text(2, 1, name[:15], 0)
        if ts:
            hhmm = local_hhmm(ts)
            self._text(d.width - 2 - font.text_width(hhmm), 1, hhmm, 0)
        pct = max(0, min(100, int(battery_pct + 0.5)))
        self._text(0, 20, "%s %d %%" % (t[_BATTERY], pct))
        gx, gy = d.width - 26, 20
        d.fill_rect(gx, gy, 22, 1, 1)
        d.fill_rect(gx, gy + 8, 22, 1, 1)
        d.fill_rect(gx, gy, 1, 9, 1)
        d.fill_rect(gx + 21, gy, 1, 9, 1)
        d.fill_rect(gx + 22, gy + 3, 2, 3, 1)
        d.fill_rect(gx + 2, gy + 2, (18 * pct) // 100, 5, 1)
        self._text(0, 36, "%s: %d" % (t[_FREE], free_ports))
        if poll is not None:
            self._text(0, 52, t[_TOUCH][:_COLS])
        d.show()

    def low_power(self, poll, lang):
        t = TEXT[ui_language(poll, lang)]
        self._frame()
        y = 8
        for line in wrap(t[_LOW], 19):
            self._centre(y, line)
            y += _LINE
        if poll is not None:
            y += 6
            for line in wrap(t[_TOUCH], 19):
                self._centre(y, line)
                y += _LINE
        self.d.show()

    def test_pattern(self):
        # Checkerboard of 8x8 blocks with every glyph class in a line: the self-test's frame.
        d = self.d
        d.fill(0)
        for by in range(0, d.height, 8):
            for bx in range(0, d.width, 8):
                if ((bx + by) >> 3) & 1:
                    d.fill_rect(bx, by, 8, 8, 1)
        d.fill_rect(0, 26, d.width, 12, 0)
        self._text(1, 27, "Aa Čč Đđ Жж Љљ 09")
        d.show()

    def power_state(self, state):
        # normal: full contrast; saver: dimmed; critical: off until a touch wakes it.
        self.state = state
        d = self.d
        if state == "critical":
            d.power(False)
        else:
            d.contrast(CONTRAST.get(state, CONTRAST["normal"]))
            d.power(True)

    def wake(self, on):
        # Only meaningful in `critical`: light the display for voting, or put it out again.
        if self.state == "critical":
            if on:
                self.d.contrast(CONTRAST["saver"])
            self.d.power(on)


class Ui:
    # What the display shows and what a pad does. Wiring:
    #   pads = TouchPads(read, profile["touch"], ticks_ms, ui.on_touch, emit_fault)
    #   ui.on_poll(payload) for each message on the poll topic; ui.tick() every 100-500 ms;
    #   ui.set_power(state) on each power state change.
    #   status() -> (municipality, battery %, free charging ports, Unix time or None)
    #   service() -> the service screen's facts (bench.service), or None where there is none
    def __init__(self, screens, voting, status, now_ms, service=None):
        self.screens = screens
        self.service = service
        self.voting = voting
        self.status = status
        self.now_ms = now_ms
        self.lang_i = 0
        self.mode = ""  # "idle", "poll", "low", "confirm", "later", "service"
        self.until = 0
        self.scroll = 0
        self.positions = 1
        self.scrolled = now_ms()
        self.minute = None
        self.power = "normal"
        self.awake = 0  # ticks until which a touch keeps the display lit in `critical`
        self.awake_on = False

    def lang(self):
        from bench.voting import languages

        langs = languages(self.voting.poll)
        return langs[self.lang_i % len(langs)]

    def home(self):
        # The screen to show when nothing transient is.
        if self.voting.poll is not None and self.voting.is_open():
            return "poll"
        return "low" if self.power == "critical" else "idle"

    def redraw(self):
        s = self.screens
        poll = self.voting.poll
        mode = self.home()
        self.mode = mode
        if mode == "poll":
            self.positions = s.poll(poll, self.lang(), self.scroll)
        elif mode == "low":
            s.low_power(poll, self.lang())
        else:
            name, pct, free, ts = self.status()
            s.idle(name, pct, free, ts, self.lang(), poll if self.voting.is_open() else None)
            self.minute = None if ts is None else ts // 60

    def _transient(self, mode):
        self.mode = mode
        self.until = self.now_ms()

    def on_touch(self, kind, pad):
        if self.power == "critical":
            if not self.awake_on:
                self.awake_on = True
                self.screens.wake(True)
                self.redraw()
            self.awake = self.now_ms()
        if kind == "service" and self.service is not None:
            from bench.runtime import job

            lang = ui_language(self.voting.poll, self.lang())
            job("service", "draw", self.screens, self.service(), lang)
            self._transient("service")
        elif kind == "hold" and self.mode in ("idle", "poll", "low"):
            self.lang_i += 1
            self.scroll = 0
            self.scrolled = self.now_ms()
            self.redraw()
        elif kind == "press":
            from bench import voting

            result, index = self.voting.press(pad)
            if result == voting.VOTED:
                self.screens.confirmation(self.voting.poll, index, self.lang())
                self._transient("confirm")
            elif result == voting.CAPPED:
                self.screens.try_later(self.voting.poll, self.lang())
                self._transient("later")

    def on_poll(self, payload):
        if self.voting.on_poll(payload):
            self.lang_i = 0
            self.scroll = 0
            if self.mode not in _TRANSIENT:
                self.redraw()

    def set_power(self, state):
        self.power = state
        self.awake_on = False
        self.screens.power_state(state)
        if self.mode not in _TRANSIENT:
            self.redraw()

    def tick(self):
        now = self.now_ms()
        if self.mode in _TRANSIENT:
            if ticks_diff(now, self.until) >= (
                _SERVICE_MS if self.mode == "service" else _CONFIRM_MS
            ):
                self.scroll = 0
                self.scrolled = now
                self.redraw()
            return
        if self.awake_on and ticks_diff(now, self.awake) >= _WAKE_MS:
            self.awake_on = False
            self.screens.wake(False)
        mode = self.home()
        if mode != self.mode:
            self.redraw()
        elif mode == "poll" and self.positions > 1 and ticks_diff(now, self.scrolled) >= _SCROLL_MS:
            self.scroll = (self.scroll + 1) % self.positions
            self.scrolled = now
            self.redraw()
        elif mode == "idle":
            ts = self.status()[3]
            if ts is not None and ts // 60 != self.minute:
                self.redraw()
