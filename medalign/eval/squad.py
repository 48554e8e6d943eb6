"""SQuAD v2 exact match and F1, following the official evaluation script.

`evaluate.load("squad_v2")` downloads its metric script from the hub, which fails
offline, so the official rules are restated here: normalize (lower case, drop
punctuation, articles and extra spaces), take the best score over the reference answers,
and treat a question without references as answered correctly only by an empty
prediction.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact(gold: str, pred: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(pred))


def f1(gold: str, pred: str) -> float:
    gold_tokens, pred_tokens = normalize_answer(gold).split(), normalize_answer(pred).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def score(golds: list[str], pred: str) -> tuple[float, float]:
    """(exact match, F1) of one prediction: best over golds; [] means unanswerable."""
    references = [g for g in golds if normalize_answer(g)] or [""]
    return max(exact(g, pred) for g in references), max(f1(g, pred) for g in references)
