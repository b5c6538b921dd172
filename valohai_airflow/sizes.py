"""Sizes as people read them, in binary units named for what they divide by (`MiB` is 1024², never
`MB`): memory limits (`16g` in the sidecar is 16 GiB) and stored files alike."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
WHOLE_BELOW = 10_240  # `1536 MiB` is read as easily as `1.5 GiB`, and says exactly what was set


def size_text(size: int) -> str:
    """`900 B`, `16 GiB`, `1536 MiB`, `1.2 MiB`: exact in the largest unit that holds the size as a
    whole number below WHOLE_BELOW (a limit reads as it was set), else to one decimal of the largest
    unit it reaches."""
    reached = 0
    while reached < len(UNITS) - 1 and size >= 1024 ** (reached + 1):
        reached += 1
    for power in range(reached, -1, -1):
        whole, rest = divmod(size, 1024**power)
        if rest == 0 and whole < WHOLE_BELOW:
            return f"{whole} {UNITS[power]}"
    return f"{size / 1024**reached:.1f} {UNITS[reached]}"
