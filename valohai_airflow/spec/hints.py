"""Small helpers for messages that tell a user what to type instead: one fuzzy match for every layer."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def closest(word: Any, choices: Iterable[str]) -> str | None:
    """The closest valid spelling, if one is close enough to be a likely typo (`time_limit` finds
    `time-limit`)."""
    if not isinstance(word, str):
        return None
    pool = list(choices)
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not matches:
        matches = difflib.get_close_matches(word.replace("_", "-").lower(), pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean "x"?` for the closest candidate, or a list of the few there are, or None."""
    pool = sorted(set(candidates))
    close = closest(name, pool)
    if close is not None:
        return f'did you mean "{close}"?'
    if pool and len(pool) <= 6:
        return "known: " + ", ".join(f'"{c}"' for c in pool)
    return None


def quoted(names: Iterable[str]) -> str:
    """`"a", "b" or "c"`: a readable enumeration for messages."""
    items = [f'"{n}"' for n in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
