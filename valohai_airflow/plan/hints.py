"""Small helpers for messages that tell a user what to type instead."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean "x"?` for the closest candidate, or a list of the few there are, or None."""
    pool = sorted(set(candidates))
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if close:
        return f'did you mean "{close[0]}"?'
    if not pool:
        return None
    if len(pool) <= 6:
        return "known: " + ", ".join(f'"{c}"' for c in pool)
    return None


def quoted(names: Iterable[str]) -> str:
    """`"a", "b" or "c"`: a readable enumeration for messages."""
    items = [f'"{n}"' for n in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
