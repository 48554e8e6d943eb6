"""Scoring for any ChoiceTask: log-likelihood of each choice (lm-eval's protocol) or a
generated answer parsed from its final line. Knows no dataset: the Task supplies the
lm-eval item, the choices, the parser and the breakdowns.

Log-likelihood results keep acc, acc_norm (lm-eval's: log-likelihood divided by the
choice's length in characters), ECE and Brier; predictions keep the raw per-choice
log-likelihoods so anyone can re-derive every number.
"""

from __future__ import annotations

import logging
from typing import Any

from medalign.data.records import QARecord
from medalign.eval import metrics as M
from medalign.eval.generate import generate_texts, progress

log = logging.getLogger(__name__)


def trained_item(task: Any, tokenizer: Any, record: QARecord) -> Any:
    """The question as the SFT stages put it: the dataset's prompt in the model's chat
    template, then the answer line up to {answer} ("Final answer:"); each choice is scored
    as the answer the line would state (" B", " yes"). With dataset.rationale=true the
    model was taught to reason first: this scores the answer line without the reasoning."""
    from medalign.errors import MedalignError
    from medalign.eval.loglik import LoglikItem

    template = task.cfg.answer_template
    prefix = template.split("{answer}")[0].rstrip()
    if not prefix:
        raise MedalignError(
            f"eval.prompt=trained: datasets.{task.cfg.name}.answer_template={template!r} has "
            "no text before {answer} to score the choices after; use eval.prompt=lm_eval "
            "or an answer line such as 'Final answer: {answer}'"
        )
    messages = [{"role": "user", "content": task.prompt(record)}]
    chat = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    choices = task.choices(record)
    return LoglikItem(chat + prefix, choices, choices.index(task.gold(record)))


def likeliest_wrong(
    model: Any, tokenizer: Any, task: Any, records: list[QARecord], batch_size: int
) -> list[str | None] | None:
    """For each question, the answer line of the wrong choice `model` scores highest (in
    the trained prompt): the policy's own most tempting mistake, a reward model's hardest
    negative. None when the task has no choices to score."""
    from medalign.eval.loglik import score_choices

    if not hasattr(task, "choices") or not hasattr(task, "gold"):
        return None
    items = [trained_item(task, tokenizer, r) for r in records]
    with progress(len(items), f"on-policy negatives {task.cfg.name}") as bar:
        scored = score_choices(
            model,
            tokenizer,
            [(it.context, it.choices) for it in items],
            batch_size,
            progress=bar.update,
        )
    out: list[str | None] = []
    for item, ll in zip(items, scored.scores, strict=True):
        wrong = max((k for k in range(len(ll)) if k != item.gold), key=ll.__getitem__)
        out.append(task.final_line(item.choices[wrong]))
    return out


def score_loglik(task: Any, ctx: Any, records: list[QARecord]) -> tuple[dict, list[dict]]:
    from medalign.eval.loglik import score_choices

    cfg = ctx.cfg
    items = [task.loglik_item(r) for r in records]
    if cfg.prompt == "trained":
        items = [trained_item(task, ctx.tokenizer, r) for r in records]
    with progress(len(items), f"eval {task.cfg.name}") as bar:
        scored = score_choices(
            ctx.model,
            ctx.tokenizer,
            [(it.context, it.choices) for it in items],
            cfg.batch_size,
            progress=bar.update,
            add_bos_token=cfg.add_bos_token,
        )
    golds = [it.gold for it in items]
    correct, correct_norm, probs, preds = [], [], [], []
    for record, item, ll, ntok, cut in zip(
        records, items, scored.scores, scored.token_counts, scored.truncated, strict=True
    ):
        pred = max(range(len(ll)), key=ll.__getitem__)
        norm = [s / len(c) for s, c in zip(ll, item.choices, strict=True)]
        pred_norm = max(range(len(norm)), key=norm.__getitem__)
        p = M.softmax(ll)
        brier_one = sum((q - float(k == item.gold)) ** 2 for k, q in enumerate(p))
        correct.append(float(pred == item.gold))
        correct_norm.append(float(pred_norm == item.gold))
        probs.append(p)
        preds.append(
            {
                "id": record.id,
                "gold": item.choices[item.gold],
                "predicted": item.choices[pred],
                "predicted_norm": item.choices[pred_norm],
                "loglik": dict(zip(item.choices, ll, strict=True)),
                "choice_tokens": dict(zip(item.choices, ntok, strict=True)),
                "probs": dict(zip(item.choices, [round(x, 6) for x in p], strict=True)),
                "truncated": cut,
                # each question's share of every per-question metric: what stage=compare
                # pairs across runs (the means are the metrics above)
                "scores": {
                    "acc": correct[-1],
                    "acc_norm": correct_norm[-1],
                    "brier": brier_one,
                    "loglik": ll[item.gold],
                },
            }
        )
    truncated = sum(scored.truncated)
    if truncated:
        log.warning(
            "%s: %d of %d prompts are longer than the model's context and were cut from the "
            "left (as lm-eval does)",
            task.cfg.name,
            truncated,
            len(records),
        )
    result = {
        "n": len(records),
        "truncated": truncated,
        "metrics": {
            "acc": M.with_ci(correct, cfg.bootstrap, cfg.seed),
            "acc_norm": M.with_ci(correct_norm, cfg.bootstrap, cfg.seed),
            "ece": {"value": M.expected_calibration_error(probs, golds), "n": len(records)},
            "brier": {"value": M.brier(probs, golds), "n": len(records)},
        },
        "reliability": M.reliability_bins(probs, golds),
    }
    _add_breakdowns(task, result, records, correct, [p["predicted"] for p in preds], preds)
    return result, preds


def score_generated(task: Any, ctx: Any, records: list[QARecord]) -> tuple[dict, list[dict]]:
    cfg = ctx.cfg
    prompts = [task.prompt(r) for r in records]
    texts = generate_texts(ctx.model, ctx.tokenizer, prompts, cfg, f"generate {task.cfg.name}")
    correct, parsed, preds = [], [], []
    for record, text in zip(records, texts, strict=True):
        pred = task.parse(text, record)
        gold = task.gold(record)
        parsed.append(float(pred is not None))
        correct.append(float(pred == gold))  # unparseable is never correct
        preds.append(
            {
                "id": record.id,
                "gold": gold,
                "predicted": pred,
                "generated": text,
                "scores": {"acc": correct[-1]},
            }
        )
    result = {
        "n": len(records),
        "metrics": {
            "acc": M.with_ci(correct, cfg.bootstrap, cfg.seed),
            "unparseable_rate": M.rate_missing(parsed),
        },
    }
    _add_breakdowns(task, result, records, correct, [p["predicted"] for p in preds], preds)
    return result, preds


def _add_breakdowns(task, result, records, correct, predicted, preds) -> None:
    extra = task.breakdowns(records, correct, predicted)
    result["metrics"].update(extra.pop("metrics", {}))
    result.update(extra)
    for row, extra in zip(preds, task.example_scores(records, correct), strict=True):
        row["scores"].update(extra)
