"""Scoring for extractive (SQuAD v2 style) tasks: generate, parse the final answer,
score exact match and F1 against every reference span.

Unparseable output is its own bucket: never correct, never read as "no answer", and not
counted in false confidence (the share of unanswerable questions given a definite
answer), whose denominator is the parseable answers to unanswerable questions.
"""

from __future__ import annotations

from typing import Any

from medalign.data.records import QARecord
from medalign.eval import metrics as M
from medalign.eval.generate import generate_texts
from medalign.eval.squad import score as squad_score


def score_spans(task: Any, ctx: Any, records: list[QARecord]) -> tuple[dict, list[dict]]:
    cfg = ctx.cfg
    prompts = [task.prompt(r) for r in records]
    texts = generate_texts(ctx.model, ctx.tokenizer, prompts, cfg, f"generate {task.cfg.name}")
    ems, f1s, parsed, has_ans, no_ans, confident, preds = [], [], [], [], [], [], []
    for record, text in zip(records, texts, strict=True):
        span = task.parse(text, record)
        golds = list(record.answer)
        parsed.append(float(span is not None))
        em, f1 = squad_score(golds, span) if span is not None else (0.0, 0.0)
        ems.append(em)
        f1s.append(f1)
        (has_ans if golds else no_ans).append(f1)
        if not golds and span is not None:
            confident.append(float(bool(span)))
        preds.append(
            {
                "id": record.id,
                "gold": golds,
                "predicted": span,
                "generated": text,
                "scores": {"exact": em, "f1": f1},
                "cluster": task.cluster(record),
            }
        )
    result = {
        "n": len(records),
        "metrics": {
            "exact": M.with_ci(ems, cfg.bootstrap, cfg.seed),
            "f1": M.with_ci(f1s, cfg.bootstrap, cfg.seed),
            "false_confidence": M.share(confident),
            "has_ans_f1": M.with_ci(has_ans, 0),
            "no_ans_f1": M.with_ci(no_ans, 0),
            "unparseable_rate": M.rate_missing(parsed),
        },
    }
    return result, preds
