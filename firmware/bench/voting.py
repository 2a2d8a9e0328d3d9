# The bench's vote rules: the retained Poll (docs/protocol.md) validated, kept in flash and
# judged by the bench's own clock; a pad press becomes a Vote only while the poll is open,
# outside the confirmation + cooldown after the last vote, and under the hourly cap.
# Everything it needs is handed in, so the same code runs on the bench, the host and the VM:
#   path        flash file holding the current poll's payload ("/poll.json")
#   now_s()     Unix seconds by the bench's clock, or None while the clock is unset
#   now_ms()    the ticks clock, milliseconds
#   emit_vote(poll_id, choice)   records the Vote (spool first; the caller stamps it)
#   emit_fault(code, detail)     records a `fault` Event
#   settings    dict-like with `cooldown` (s) and `vote_cap` (per hour), read at each press
import json
import os

from bench.runtime import const, job, ticks_diff

_POLL_MAX_BYTES = const(4096)
_CONFIRM_MS = const(3000)
_COOLDOWN_S = const(10)
_VOTE_CAP = const(60)
_HOUR_MS = const(3600000)
LANGUAGE_ORDER = ("bs", "hr", "sr", "en")

# press() results
VOTED = "vote"
COOLDOWN = "cooldown"  # a touch, not a vote: confirmation or cooldown in progress
CAPPED = "cap"  # hourly cap reached: "try again later"
CLOSED = "closed"  # no poll, or not open by the bench's clock (or the clock is unset)
NO_OPTION = "none"  # a pad beyond the poll's options


def poll_error(poll):
    # Why `poll` (parsed JSON) is not a valid open Poll, or None: bench.pollcheck, imported
    # for the check and dropped afterwards (a poll arrives rarely; its rules need not stay).
    return job("pollcheck", "poll_error", poll)


def languages(poll):
    # The poll's languages in the order the pad gesture cycles them: bs, hr, sr, en, others.
    if poll is None:
        return ["bs"]
    q = poll["question"]
    out = [k for k in LANGUAGE_ORDER if k in q]
    extra = sorted(k for k in q if k not in LANGUAGE_ORDER)
    return out + extra


class Voting:
    def __init__(self, path, now_s, now_ms, emit_vote, emit_fault, settings=None):
        self.path = path
        self.now_s = now_s
        self.now_ms = now_ms
        self.emit_vote = emit_vote
        self.emit_fault = emit_fault
        self.settings = settings if settings is not None else {}
        self.poll = None
        self._payload = None
        self._votes = []  # ticks of the votes in the last hour, oldest first
        self._last = None  # ticks of the last vote
        self.load()

    # -- the poll -----------------------------------------------------------------
    def load(self):
        # The poll kept in flash, if any and still valid (a torn write is ignored).
        try:
            with open(self.path, "rb") as f:
                payload = f.read(_POLL_MAX_BYTES + 1)
        except OSError:
            return
        try:
            poll = json.loads(payload)
        except ValueError:
            poll = None
        if poll_error(poll) is None:
            self.poll = poll
            self._payload = payload
        else:
            self.emit_fault("poll_invalid", "stored poll unreadable; dropped")
            self._remove()

    def _remove(self):
        try:
            os.remove(self.path)
        except OSError:
            pass

    def _store(self, payload):
        # Write beside, then rename over: a power cut leaves the old poll or the new one.
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(payload)
        try:
            os.rename(tmp, self.path)
        except OSError:  # FAT will not rename over an existing file
            self._remove()
            os.rename(tmp, self.path)

    def on_poll(self, payload):
        # A message on the municipality's poll topic. Returns True when the poll shown changed.
        if not payload:
            return False  # a deleted retained message; keep what we have (docs/protocol.md)
        if len(payload) > _POLL_MAX_BYTES:
            too_big = "poll of %d bytes > %d" % (len(payload), _POLL_MAX_BYTES)
            self.emit_fault("poll_invalid", too_big)
            return False
        if payload == self._payload:
            return False  # the retained poll again after a reconnect
        try:
            poll = json.loads(payload)
        except ValueError:
            self.emit_fault("poll_invalid", "poll is not JSON")
            return False
        if type(poll) is dict and "id" in poll and poll["id"] is None and poll.get("v") == 1:
            if self.poll is None:
                return False
            self.poll = None
            self._payload = None
            self._remove()
            return True
        err = poll_error(poll)
        if err is not None:
            self.emit_fault("poll_invalid", ("poll: " + err)[:120])
            return False
        self._store(payload)
        self.poll = poll
        self._payload = payload
        return True

    def is_open(self, ts=None):
        if self.poll is None:
            return False
        if ts is None:
            ts = self.now_s()
            if ts is None:
                return False
        return self.poll["opens"] <= ts < self.poll["closes"]

    # -- presses ------------------------------------------------------------------
    def _cooldown_ms(self):
        return _CONFIRM_MS + 1000 * int(self.settings.get("cooldown", _COOLDOWN_S))

    def _prune(self, now):
        v = self._votes
        while v:
            age = ticks_diff(now, v[0])
            if 0 <= age < _HOUR_MS:
                break
            v.pop(0)

    def votes_last_hour(self):
        self._prune(self.now_ms())
        return len(self._votes)

    def blocked(self):
        # True while a new press would only count as a touch (confirmation + cooldown).
        if self._last is None:
            return False
        age = ticks_diff(self.now_ms(), self._last)
        return 0 <= age < self._cooldown_ms()

    def press(self, pad):
        # A recognised vote press on pad `pad` (0-based). Returns (result, option index).
        poll = self.poll
        if poll is None:
            return CLOSED, -1
        ts = self.now_s()
        if ts is None or not self.is_open(ts):
            return CLOSED, -1
        if pad < 0 or pad >= len(poll["options"]):
            return NO_OPTION, -1
        if self.blocked():
            return COOLDOWN, pad
        now = self.now_ms()
        self._prune(now)
        if len(self._votes) >= int(self.settings.get("vote_cap", _VOTE_CAP)):
            return CAPPED, pad
        self.emit_vote(poll["id"], poll["options"][pad]["id"])
        self._votes.append(now)
        self._last = now
        return VOTED, pad
