"""The one exception type for mistakes a user can fix.

The CLI prints a `MedalignError` as one clear message without a traceback and exits
non-zero; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class MedalignError(Exception):
    """A user-facing error: the message names what is wrong and where (file, row, field)."""


class NothingToResume(MedalignError):
    """`resume=` names a run that is complete: said in one line, exit 0, nothing touched."""


def where(path: object, row: object | None = None, field: str | None = None) -> str:
    """Format a location as `file, row 'key', field 'name'` for error messages."""
    parts = [str(path)]
    if row is not None:
        parts.append(f"row {row!r}")
    if field is not None:
        parts.append(f"field {field!r}")
    return ", ".join(parts)


def did_you_mean(word: str, options: object) -> str:
    """' Did you mean 'x'?' for the closest of `options` to a mistyped `word`, or ''."""
    import difflib

    close = difflib.get_close_matches(word, sorted(options), n=1)  # type: ignore[call-overload]
    return f" Did you mean {close[0]!r}?" if close else ""
