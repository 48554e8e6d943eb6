"""One way to print a number in every table medalign writes (results.md, summary.md, the
model card): three decimals, and `n/a` where there was nothing to count (null or NaN), so
a missing value never reads as `nan` in one file and `null` or a crash in another."""

from __future__ import annotations


def number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"
