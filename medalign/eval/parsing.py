"""Parse the final answer out of generated text: `Final answer: C`, tolerant of markdown
and case. An answer that names two choices, or none, is unparseable (None): reported as
a rate, never silently scored as a valid wrong answer.
"""

from __future__ import annotations

import re

_FINAL = re.compile(r"final\s+answer\s*(?:is)?\s*[:：]?(.*)", re.IGNORECASE)
_MARKDOWN = re.compile(r"[*_`#>]")
_WORD = re.compile(r"[A-Za-z]+")


def final_answer_text(text: str) -> str | None:
    """What follows the last `Final answer:` marker, markdown stripped; None if absent."""
    found = None
    for line in text.splitlines():
        match = _FINAL.search(_MARKDOWN.sub("", line))
        if match:
            found = match.group(1).strip()
    return found


def parse_choice(text: str, choices: list[str]) -> str | None:
    """The single choice (a letter, or yes/no/maybe) the final answer names, else None."""
    answer = final_answer_text(text)
    if not answer:
        return None
    words = _WORD.findall(answer)
    if not words:
        return None
    if all(len(c) == 1 for c in choices):  # letters: "C", "(c)", "C. Graves disease"
        named = {w.upper() for w in words if len(w) == 1 and w.upper() in choices}
        first = words[0].upper() if len(words[0]) == 1 else None
    else:  # words: yes / no / maybe
        named = {w.lower() for w in words if w.lower() in choices}
        first = words[0].lower()
    if first in choices and named == {first}:
        return first
    return None


def parse_span(text: str, no_answer: str) -> str | None:
    """The answer span ("" for 'the report does not answer'), or None if unparseable."""
    answer = final_answer_text(text)
    if answer is None:
        return None
    if answer.strip().lower().rstrip(".") == no_answer.strip().lower().rstrip("."):
        return ""
    return answer.strip()
