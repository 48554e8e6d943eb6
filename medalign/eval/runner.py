"""Score a loaded model on every evaluation dataset: the code shared by `stage=eval` and
the evaluation that follows each training stage (`eval.after_train=true`).

Multiple-choice and yes/no/maybe datasets are scored by log-likelihood (lm-eval's
protocol: acc, acc_norm, plus calibration) or, with eval.mode=generate, by generating an
answer in the chat format and parsing its final-answer line. RadQA is always generative,
scored with SQuAD v2 exact match and F1.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from medalign.config import DatasetConfig, EvalConfig
from medalign.data.formatting import answer_text, render_prompt
from medalign.data.loading import dataset_config, load_records
from medalign.data.records import QARecord
from medalign.eval import metrics as M
from medalign.eval.loglik import score_fast
from medalign.eval.parsing import parse_choice, parse_span
from medalign.eval.prompts import loglik_item
from medalign.eval.squad import score as squad_score

log = logging.getLogger(__name__)
CHOICE_FORMATS = ("pubmedqa", "medmcqa", "medqa")


def evaluate(
    model: Any,
    tokenizer: Any,
    cfg: EvalConfig,
    current: DatasetConfig,
    data_root: str | None,
    reward_models: dict[str, str | None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(results by dataset, per-example predictions) for every dataset in cfg.datasets."""
    model.eval()
    results, predictions = {}, []
    for name in cfg.datasets:
        dcfg = dataclasses.replace(dataset_config(name, current), limit=None)  # eval.limit rules
        split = (cfg.splits or {}).get(name, dcfg.eval_split)
        data = load_records(dcfg, data_root, split=split)
        records = data.records[: (cfg.limits or {}).get(name, cfg.limit) or None]
        mode = (
            cfg.mode
            if cfg.mode != "auto"
            else ("loglik" if dcfg.format in CHOICE_FORMATS else "generate")
        )
        log.info("evaluating %s/%s: %d examples, %s", name, split, len(records), mode)
        if dcfg.format == "medsafetybench":
            mode = "generate"
            result, preds = safety(model, tokenizer, records, dcfg, cfg, reward_models or {})
        elif mode == "loglik":
            result, preds = _loglik(model, tokenizer, records, dcfg, cfg)
        elif dcfg.format == "radqa":
            result, preds = _extractive(model, tokenizer, records, dcfg, cfg)
        else:
            result, preds = _generative_choice(model, tokenizer, records, dcfg, cfg)
        result.update(split=split, mode=mode, source=data.source)
        results[name] = result
        predictions += [{"dataset": name, **p} for p in preds]
    return results, predictions


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", leave=False)


def _loglik(model, tokenizer, records, dcfg, cfg) -> tuple[dict, list[dict]]:
    items, golds = [], []
    for record in records:
        context, choices, gold = loglik_item(record, dcfg.format)
        items.append((context, choices))
        golds.append(gold)
    with _progress(len(items), f"eval {dcfg.name}") as bar:
        scores = score_fast(model, tokenizer, items, cfg.batch_size, progress=bar.update)
    correct, correct_norm, probs, preds = [], [], [], []
    for record, (_, choices), gold, ll in zip(records, items, golds, scores, strict=True):
        pred = max(range(len(ll)), key=ll.__getitem__)
        norm = [s / len(c) for s, c in zip(ll, choices, strict=True)]
        pred_norm = max(range(len(norm)), key=norm.__getitem__)
        p = M.softmax(ll)
        correct.append(float(pred == gold))
        correct_norm.append(float(pred_norm == gold))
        probs.append(p)
        preds.append(
            {
                "id": record.id,
                "gold": choices[gold],
                "predicted": choices[pred],
                "probs": dict(zip(choices, [round(x, 6) for x in p], strict=True)),
            }
        )
    result = {
        "n": len(records),
        "metrics": {
            "acc": M.with_ci(correct, cfg.bootstrap, cfg.seed),
            "acc_norm": M.with_ci(correct_norm, cfg.bootstrap, cfg.seed),
            "ece": {"value": M.expected_calibration_error(probs, golds), "n": len(records)},
            "brier": {"value": M.brier(probs, golds), "n": len(records)},
        },
        "reliability": M.reliability_bins(probs, golds),
    }
    _breakdowns(result, records, correct, [p["predicted"] for p in preds], dcfg)
    return result, preds


def _false_confidence(flags: list[float]) -> dict[str, Any]:
    """Share of "maybe"/unanswerable questions given a definite answer (lower is safer)."""
    return {"value": sum(flags) / len(flags) if flags else float("nan"), "n": len(flags)}


def _breakdowns(
    result: dict,
    records: list[QARecord],
    correct: list[float],
    predicted: list,
    dcfg: DatasetConfig,
) -> None:
    if dcfg.format == "medmcqa":
        result["by_subject"] = M.grouped_accuracy([r.meta.get("subject") for r in records], correct)
    if dcfg.format == "medqa":
        result["by_step"] = M.grouped_accuracy([r.meta.get("step") for r in records], correct)
    if dcfg.format == "pubmedqa":
        labels = ["yes", "no", "maybe"]
        matrix = {g: {p: 0 for p in [*labels, "unparseable"]} for g in labels}
        for record, pred in zip(records, predicted, strict=True):
            matrix[str(record.answer)][pred if pred in labels else "unparseable"] += 1
        result["confusion"] = matrix  # rows: gold, columns: predicted
        flags = [
            float(p in ("yes", "no"))
            for r, p in zip(records, predicted, strict=True)
            if r.answer == "maybe"
        ]
        result["metrics"]["false_confidence"] = _false_confidence(flags)


def generate_texts(
    model: Any, tokenizer: Any, prompts: list[str], cfg: EvalConfig, desc: str
) -> list[str]:
    """Greedy chat-format answers to `prompts`, batched with left padding."""
    import torch

    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    outputs = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right edge
    try:
        with _progress(len(texts), desc) as bar, torch.no_grad():
            for start in range(0, len(texts), cfg.batch_size):
                batch = tokenizer(
                    texts[start : start + cfg.batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(model.device)
                out = model.generate(
                    **batch,
                    max_new_tokens=cfg.max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
                new = out[:, batch["input_ids"].shape[1] :]
                outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
                bar.update(len(new))
    finally:
        tokenizer.padding_side = side
    return outputs


def _generative_choice(model, tokenizer, records, dcfg, cfg) -> tuple[dict, list[dict]]:
    texts = generate_texts(
        model, tokenizer, [render_prompt(r, dcfg) for r in records], cfg, f"generate {dcfg.name}"
    )
    correct, parsed, preds = [], [], []
    for record, text in zip(records, texts, strict=True):
        choices = list(record.options) if record.options else ["yes", "no", "maybe"]
        pred = parse_choice(text, choices)
        parsed.append(float(pred is not None))
        correct.append(float(pred == answer_text(record, dcfg)))
        preds.append(
            {
                "id": record.id,
                "gold": answer_text(record, dcfg),
                "predicted": pred,
                "generated": text,
            }
        )
    result = {
        "n": len(records),
        "metrics": {
            "acc": M.with_ci(correct, cfg.bootstrap, cfg.seed),
            "unparseable_rate": {
                "value": 1.0 - sum(parsed) / max(len(parsed), 1),
                "n": len(parsed),
            },
        },
    }
    _breakdowns(result, records, correct, [p["predicted"] for p in preds], dcfg)
    return result, preds


def _extractive(model, tokenizer, records, dcfg, cfg) -> tuple[dict, list[dict]]:
    texts = generate_texts(
        model, tokenizer, [render_prompt(r, dcfg) for r in records], cfg, f"generate {dcfg.name}"
    )
    ems, f1s, parsed, has_ans, no_ans, confident, preds = [], [], [], [], [], [], []
    for record, text in zip(records, texts, strict=True):
        span = parse_span(text, dcfg.no_answer)
        parsed.append(float(span is not None))
        golds = list(record.answer)
        em, f1 = squad_score(golds, span) if span is not None else (0.0, 0.0)
        ems.append(em)
        f1s.append(f1)
        (has_ans if golds else no_ans).append(f1)
        if not golds:
            confident.append(float(bool(span)))
        preds.append({"id": record.id, "gold": golds, "predicted": span, "generated": text})
    result = {
        "n": len(records),
        "metrics": {
            "exact": M.with_ci(ems, cfg.bootstrap, cfg.seed),
            "f1": M.with_ci(f1s, cfg.bootstrap, cfg.seed),
            "false_confidence": _false_confidence(confident),
            "has_ans_f1": M.with_ci(has_ans, 0),
            "no_ans_f1": M.with_ci(no_ans, 0),
            "unparseable_rate": {
                "value": 1.0 - sum(parsed) / max(len(parsed), 1),
                "n": len(parsed),
            },
        },
    }
    return result, preds


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """{"eval/<dataset>/<metric>": value} for W&B and the manifest."""
    return {
        f"eval/{name}/{metric}": value["value"]
        for name, result in results.items()
        for metric, value in result["metrics"].items()
    }


def _rate_missing(parsed: list[float]) -> dict[str, Any]:
    return {"value": 1.0 - sum(parsed) / max(len(parsed), 1), "n": len(parsed)}


def safety(model, tokenizer, records, dcfg, cfg, reward_models) -> tuple[dict, list[dict]]:
    """Harmful requests: refusal rate, safety-reward score, optional judge harm score."""
    from medalign.rewards.refusal import is_refusal

    texts = generate_texts(
        model, tokenizer, [render_prompt(r, dcfg) for r in records], cfg, f"generate {dcfg.name}"
    )
    refused = [float(is_refusal(t)) for t in texts]
    preds = [
        {"id": r.id, "category": r.meta.get("category"), "generated": t, "refused": bool(f)}
        for r, t, f in zip(records, texts, refused, strict=True)
    ]
    metrics: dict[str, Any] = {"refusal_rate": M.with_ci(refused, cfg.bootstrap, cfg.seed)}
    if reward_models.get("safety"):
        from medalign.rewards.functions import reward_model_fn

        score = reward_model_fn("safety", str(reward_models["safety"]))
        prompts = [[{"role": "user", "content": r.question}] for r in records]
        values = score(prompts, [[{"role": "assistant", "content": t}] for t in texts])
        metrics["safety_reward"] = M.with_ci(values, 0)
    if cfg.judge_model:
        from medalign.eval.judge import judge_harm

        harms = judge_harm(cfg.judge_model, [r.question for r in records], texts)
        valid = [h for h in harms if h is not None]
        metrics["harm_score"] = M.with_ci(valid, cfg.bootstrap, cfg.seed)
        metrics["judge_unparseable_rate"] = _rate_missing([float(h is not None) for h in harms])
        for p, h in zip(preds, harms, strict=True):
            p["harm_score"] = h
    result = {
        "n": len(records),
        "metrics": metrics,
        "by_category": M.grouped_accuracy([str(r.meta.get("category")) for r in records], refused),
    }
    return result, preds
