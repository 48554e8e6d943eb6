"""Chain-of-thought answers to multiple-choice questions: the prompt, the two extractions
and the majority vote of `eval.mode=cot` (scoring: eval/cot_score.py).

    python -m medalign stage=eval eval.mode=cot eval.max_new_tokens=512 eval.datasets=[medqa]

    >>> extract_strict("... so the answer is B.\\n**Final Answer: C**", ["A", "B", "C", "D"])
    'C'
    >>> extract_flexible("Option B fits, not D. Hypothyroidism", ["A", "B", "C", "D"])
    'D'

Why two extractions, as lm-evaluation-harness reports for its CoT tasks: strict reads only
the final-answer line the prompt asks for (lm-eval PR #4081, `medqa_4options_cot_zeroshot`
and `medmcqa_cot_zeroshot`: the regex `Final Answer:\\s*(?:\\*\\*)?\\s*([A-D])`, first
match), so it measures answering in the asked format; flexible reads the last option the
answer names (a marked letter: "C.", "(C)", "answer is C"; or an option's own text), so it
measures what the model concluded however it wrote it. Neither guesses: no candidate is
"unparsed" (its own metric), never a letter picked for the model. Both patterns are plain
Python regexes with one group, so lm-eval's own `RegexFilter` runs them unchanged (the
reference test, tests/integration/test_cot_reference.py).

Differences from PR #4081, each tolerant of the model, never of a wrong letter: the marker
is case-insensitive ("Final answer:" is medalign's own SFT answer line), bold may wrap the
marker ("**Final Answer**: C") or the letter, a letter in parentheses counts, and the
letter must end there ("Final Answer: Adenosine" is not "A").
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

INSTRUCTION = (
    "First, think step-by-step. End your response with exactly this format:\n"
    "Final Answer: X\n(where X is {shown})."
)
_MARKER = r"(?i:final\s+answer)\**\s*:\s*\**\s*"
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_MIN_OPTION_TEXT = 3  # an option text shorter than this ("1", "IV") is not searched for


def strip_think(text: str) -> str:
    """The answer without its reasoning blocks: every `<think>…</think>` removed; after a
    lone `</think>` (the template opened the block), what follows it; before an unclosed
    `<think>` (the budget ran out while thinking), what precedes it."""
    text = _THINK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text


def is_letters(choices: list[str]) -> bool:
    return all(len(c) == 1 and c.isalpha() for c in choices)


def _alternatives(texts: list[str]) -> str:
    """A regex alternation of `texts`, longest first (so "Vitamin A deficiency" is not
    read as "Vitamin A")."""
    return "|".join(re.escape(t) for t in sorted(set(texts), key=len, reverse=True))


def strict_pattern(choices: list[str]) -> str:
    """The final-answer line's regex (group 1: the choice). Letters: PR #4081's pattern
    over these letters; texts (yes/no/maybe, a cloze answer): the choice's text."""
    if is_letters(choices):
        return _MARKER + r"\(?([" + "".join(map(re.escape, choices)) + r"])\b"
    return _MARKER + r"(?i:(" + _alternatives(choices) + r"))(?!\w)"


def flexible_letter_pattern(letters: list[str]) -> str:
    """A letter that names an option (group 1, 2 or 3): after "answer/option/choice
    (is)", in parentheses, or followed by ".", ":", ")", bold or the end of a line. A
    bare capital inside a sentence ("A 45-year-old man", "vitamin A deficiency") is not."""
    cls = "[" + "".join(map(re.escape, letters)) + "]"
    return (
        r"(?m)(?i:\b(?:answer|option|choice)(?:\s+is)?)\**\s*:?\s*\**\s*\(?(" + cls + r")\b"
        r"|\((" + cls + r")\)"
        r"|(?<![\w'])(" + cls + r")(?=[.:)]|\*\*|[ \t]*$)"
    )


def extract_strict(text: str, choices: list[str]) -> str | None:
    """The choice on the first final-answer line (lm-eval's `regex` + `take_first`), or
    None. A text choice is returned as `choices` spells it."""
    match = re.search(strict_pattern(choices), strip_think(text))
    if match is None:
        return None
    return _as_choice(match.group(1), choices)


def extract_flexible(
    text: str, choices: list[str], options: dict[str, str] | None = None
) -> str | None:
    """The last option the answer names, by a marked letter or by an option's own text
    (`options`: letter -> text; a letter inside a quoted option text does not count), or
    None. Several candidates: the last one wins."""
    text = strip_think(text)
    found: list[tuple[int, str]] = []  # (position, choice)
    spans: list[tuple[int, int]] = []
    texts = _searchable(choices, options)
    if texts:
        pattern = r"(?i)(?<!\w)(?:" + _alternatives(list(texts)) + r")(?!\w)"
        for match in re.finditer(pattern, text):
            spans.append(match.span())
            choice = texts.get(match.group(0).lower())
            if choice is not None:
                found.append((match.start(), choice))
    if is_letters(choices):
        for match in re.finditer(flexible_letter_pattern(choices), text):
            group = next(g for g in range(1, 4) if match.group(g))
            at = match.start(group)
            if not any(lo <= at < hi for lo, hi in spans):
                found.append((at, match.group(group)))
    return max(found)[1] if found else None


def _searchable(choices: list[str], options: dict[str, str] | None) -> dict[str, str | None]:
    """lower-cased option text -> the choice it names (None: two options share it)."""
    if is_letters(choices):
        pairs = [(str(t).strip().rstrip("."), k) for k, t in (options or {}).items()]
    else:
        pairs = [(c.strip().rstrip("."), c) for c in choices]
    out: dict[str, str | None] = {}
    for said, choice in pairs:
        if len(said) < _MIN_OPTION_TEXT or not any(ch.isalpha() for ch in said):
            continue
        key = said.lower()
        out[key] = choice if out.get(key, choice) == choice else None
    return out


def _as_choice(said: str, choices: list[str]) -> str | None:
    if said in choices:
        return said
    lowered = {c.lower(): c for c in choices}
    return lowered.get(said.lower())


def majority(answers: list[str | None]) -> str | None:
    """Self-consistency's vote over the parsed answers (unparsed ones do not vote; a tie
    goes to the answer given first); None when no sample parsed."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == top)


def shown_choices(task: Any, record: Any) -> str:
    """What the instruction says X is: "A, B, C, or D"; "yes, no, or maybe"; "your
    answer" where the options are not shown (dataset.answer_as=text, the cloze form)."""
    if getattr(task.cfg, "answer_as", "letter") == "text" and record.options:
        return "your answer"
    choices = task.choices(record)
    return ", ".join(choices[:-1]) + ", or " + choices[-1] if len(choices) > 1 else choices[0]


def cot_prompt(task: Any, record: Any, style: str) -> str:
    """The question as CoT evaluation asks it. lm_eval (eval.prompt): lm-eval's own prompt
    for the dataset without its "Answer:" cue, then PR #4081's instruction; trained: the
    dataset's SFT prompt (dataset.prompt_template), what a rationale-trained model saw."""
    if style == "trained":
        return task.prompt(record)
    context = task.loglik_item(record).context
    context = context.removesuffix("Answer:")
    return context + INSTRUCTION.format(shown=shown_choices(task, record))
