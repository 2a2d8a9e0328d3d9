"""Hypothesis strategies for what a stranger or a broken peer can send: any JSON value, and a
valid document with one place changed. Shared by the portal's and the gateway's input tests."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

# Any JSON value, with the awkward ones a check may miss: huge and negative numbers, floats,
# booleans (an int subclass in Python), empty and long strings, control characters.
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["", " ", "x" * 5000, "mostar", "mostar-01", "yes", "2026-11-26", "\x00"]),
)
json_value = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value: the value itself and each key or index below it."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, good: Any) -> Any:
    """`good` with one place replaced by any JSON value, removed, or given an unknown key."""
    body = copy.deepcopy(good)
    where = draw(st.sampled_from(paths(body)))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if not where:
        return draw(json_value) if action == "replace" else body
    parent = body
    for step in where[:-1]:
        parent = parent[step]
    last = where[-1]
    if action == "replace":
        parent[last] = draw(json_value)
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=8))] = draw(json_value)
    else:
        parent.append(draw(json_value))
    return body
