"""Paths that valohai.yaml (or a run conf) names relative to a folder, and must stay inside it.

One check for every such value (an input's `filename` and `name`, an endpoint file's `path`, a
relative input default, a keep-directories or edge-staged name): the spec refuses it at compile
time with the value's file:line:column, and the runtime refuses it again before writing anything
(`runtime.confinement`). The rule is textual: relative, no `..` part, no NUL, and not empty (and no
backslash in what a person wrote); whether a symlink on the way leads out is the runtime's check,
on the real folder.
"""

from __future__ import annotations

import posixpath


def relative_path_problem(value: str) -> str | None:
    """Why `value`, written in valohai.yaml or a run conf, cannot name a place below its folder.

    A backslash is refused here: written by a person it is meant as a Windows separator."""
    if "\\" in value:
        return "contains a backslash; use '/' between folders"
    return escape_problem(value)


def escape_problem(value: str) -> str | None:
    """Why `value` would leave its folder (or name none), or None when it stays below it.

    The runtime's rule for names that come from files (an upstream output, a stored key): on POSIX
    a backslash is an ordinary character of a file name, so it is kept."""
    if "\x00" in value:
        return "contains a NUL character"
    if value.startswith("/"):
        return "is absolute; it must be relative to its folder"
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "contains '..'; it must stay inside its folder"
    if not parts:
        return "names no file"
    return None


def segment_problem(value: str) -> str | None:
    """Why `value` cannot be one folder name (an input's folder below /valohai/inputs), or None."""
    if "/" in value or "\\" in value or "\x00" in value:
        return "must be one folder name, without '/', '\\' or NUL"
    if value in ("", ".", ".."):
        return "must name a folder, not '.' or '..'"
    return None


def climbs_out(relative: str) -> bool:
    """A relative local path (e.g. an input default read below the project folder) that leaves it."""
    normal = posixpath.normpath(relative)
    return normal == ".." or normal.startswith("../")


def is_relative_local(url: str) -> bool:
    """An input URL that is a path relative to the project folder (no scheme, not absolute)."""
    return "://" not in url and not url.startswith("/")
