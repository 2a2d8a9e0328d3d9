# The retained Poll's rules (docs/protocol.md, Poll): what bench.voting checks before it shows
# a poll or keeps it in flash. Imported for one check and dropped afterwards.
from bench.protocol import whole
from bench.runtime import const

_QUESTION_MAX = const(200)
_LABEL_MAX = const(24)
_OPTIONS_MIN = const(2)
_OPTIONS_MAX = const(4)
_TIME_MAX = 9007199254740992  # 2**53, where JSON integers stop being exact


def _is_num(x):
    # An int or a finite float (json gives inf for 1e999, and int(inf) raises).
    if type(x) is int:
        return True
    return type(x) is float and x == x and x - x == 0


def _slug(s, first, rest, lo, hi):
    # s[0] in first, s[1:] in rest, lo <= len(s) <= hi
    if type(s) is not str or not lo <= len(s) <= hi:
        return False
    if s[0] not in first:
        return False
    for ch in s[1:]:
        if ch not in rest:
            return False
    return True


_LOWER_DIGIT = "abcdefghijklmnopqrstuvwxyz0123456789"
_SLUG = _LOWER_DIGIT + "-"


def poll_id_ok(s):
    return _slug(s, _LOWER_DIGIT, _SLUG, 3, 64)


def option_id_ok(s):
    return _slug(s, _LOWER_DIGIT, _SLUG, 1, 16)


def _texts_error(texts, limit, what):
    if type(texts) is not dict:
        return what + " is not an object"
    if type(texts.get("bs")) is not str or not texts["bs"]:
        return what + " has no bs text"
    for lang in texts:
        s = texts[lang]
        if type(s) is not str:
            return what + "." + str(lang)[:8] + " is not a string"
        if len(s) > limit:
            return "%s.%s longer than %d" % (what, str(lang)[:8], limit)
    return None


def poll_error(poll):
    # Why `poll` (parsed JSON) is not a valid open Poll, or None. The closing Poll
    # ({"v":1,"id":null}) is handled before this.
    if type(poll) is not dict:
        return "not an object"
    if whole(poll.get("v")) != 1:
        return "v is not 1"
    if not poll_id_ok(poll.get("id")):
        return "bad id"
    for k in ("opens", "closes"):
        # Times are numbers; a float is accepted (docs/protocol.md's number rule), though a bench
        # whose floats are single precision reads one to within a couple of minutes.
        if not _is_num(poll.get(k)):
            return k + " is not a number"
        if not 0 <= poll[k] <= _TIME_MAX:  # as the gateway and the portal judge a time
            return k + " is out of range"
    if poll["closes"] <= poll["opens"]:
        return "closes is not after opens"
    err = _texts_error(poll.get("question"), _QUESTION_MAX, "question")
    if err:
        return err
    opts = poll.get("options")
    if type(opts) is not list or not _OPTIONS_MIN <= len(opts) <= _OPTIONS_MAX:
        return "options: need 2 to 4"
    seen = []
    for i, o in enumerate(opts):
        if type(o) is not dict or not option_id_ok(o.get("id")):
            return "option %d: bad id" % (i + 1)
        if o["id"] in seen:
            return "option %d: duplicate id" % (i + 1)
        seen.append(o["id"])
        err = _texts_error(o.get("label"), _LABEL_MAX, "option %d label" % (i + 1))
        if err:
            return err
    return None
