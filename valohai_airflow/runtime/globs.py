"""Glob matching for output edges (`train.output.<glob>` → `eval.input.x`).

Semantics (our choice; Valohai does not publish them, see VALOHAI.md §6.1):

- The pattern is matched against the output's path relative to `/valohai/outputs`,
  always with `/` separators: `model.pkl`, `results/model.pkl`.
- `*` matches any run of characters within ONE path level (never `/`); `?` is one character
  other than `/`; `[abc]`, `[a-z]` and `[!abc]` are character classes (never `/`).
- `**` crosses levels: `**/x.pkl` matches `x.pkl` at any depth (also the top), `results/**`
  matches everything under `results/`, `a/**/b` matches `a/b` and `a/x/y/b`.
- A pattern ending in `/` names a directory and matches everything under it.
- A pattern without `/` is NOT also tried against the basename. Valohai's docs say `model*`
  means "files starting with model under /valohai/outputs" and that files in a subdirectory are
  passed with `results/model.pkl` or `results/*.pkl`; so `*.pkl` takes the top-level pickles
  only, and `**/*.pkl` (or `**.pkl`) takes them all. Matching basenames too would silently pull
  checkpoint and cache files from subdirectories into an edge. `match_basename=True` restores
  that looser reading for whoever wants it.
- Matching is case-sensitive, and `*` matches names starting with a dot.

Each pattern compiles to one regular expression once, so one edge over a 100,000-file manifest
resolves in a few milliseconds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def _class(pattern: str, i: int) -> tuple[str, int] | None:
    """Translate a `[...]` class starting at pattern[i]; None if it is not closed."""
    j = i + 1
    if j < len(pattern) and pattern[j] in "!^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 1
    if j >= len(pattern):
        return None
    body = pattern[i + 1 : j]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    body = body.replace("\\", "\\\\").replace("/", "")
    return ("[^/" + body + "]" if negate else "[" + body + "]"), j + 1


def translate(pattern: str) -> str:
    """The regular expression (without anchors) for one glob pattern."""
    if pattern.endswith("/"):
        pattern += "**"
    while pattern.startswith("./"):
        pattern = pattern[2:]
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                j = i
                while j < n and pattern[j] == "*":
                    j += 1
                at_start = i == 0 or pattern[i - 1] == "/"
                if at_start and j < n and pattern[j] == "/":
                    out.append("(?:.*/)?")  # `**/` also matches zero directories
                    i = j + 1
                else:
                    out.append(".*")
                    i = j
            else:
                out.append("[^/]*")
                i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            translated = _class(pattern, i)
            if translated is None:
                out.append(re.escape(c))
                i += 1
            else:
                out.append(translated[0])
                i = translated[1]
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class OutputGlob:
    """One compiled output-edge pattern."""

    pattern: str
    regex: re.Pattern[str]
    match_basename: bool = False

    def matches(self, path: str) -> bool:
        if self.regex.fullmatch(path):
            return True
        if self.match_basename and "/" not in self.pattern:
            return self.regex.fullmatch(path.rpartition("/")[2]) is not None
        return False

    @property
    def matches_everything(self) -> bool:
        """`**` (and `***`, ...): every path, so a filter needs no match per path."""
        return self.regex.pattern == ".*"

    def filter(self, paths: Iterable[str]) -> list[str]:
        """The matching paths, in the given order."""
        if self.matches_everything:
            return list(paths)
        full = self.regex.fullmatch
        if self.match_basename and "/" not in self.pattern:
            return [p for p in paths if full(p) or full(p.rpartition("/")[2])]
        return [p for p in paths if full(p)]


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str, *, match_basename: bool = False) -> OutputGlob:
    if not pattern:
        raise ValueError("empty output glob")
    return OutputGlob(pattern, re.compile(translate(pattern), re.DOTALL), match_basename)


def match_outputs(pattern: str, paths: Sequence[str], *, match_basename: bool = False) -> list[str]:
    """Paths (relative to the outputs dir) that an output edge with `pattern` selects."""
    return compile_glob(pattern, match_basename=match_basename).filter(paths)


def has_wildcards(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
