"""Score a ChoiceTask by generated chain-of-thought (`eval.mode=cot`): k answers per question,
strict and flexible extraction (eval/cot.py), accuracy, the unparsed rate and maj@k.

    python -m medalign stage=eval eval.mode=cot eval.max_new_tokens=512
    python -m medalign stage=eval eval.mode=cot eval.samples=8 eval.temperature=0.7

Why its own scorer: log-likelihood asks which option the model finds likeliest right after
"Answer:"; a reasoning model answers after it reasons, and is judged (in its papers, and in
lm-eval's CoT tasks) by what it writes. The prompt is put in the model's chat template
when it has one (else raw, with lm-eval's BOS rule), generated greedily by default in
batches by the one generator evaluation and stage=generate share (models/inference.py,
eval.generation_backend=vllm included).

Metrics (every one with n and a 95% interval): `acc_cot_strict`, `acc_cot_flexible`,
`unparsed_cot_strict`, `unparsed_cot_flexible` (per question: the share of its k answers;
Wilson's interval at k=1), and with k > 1 `maj<k>_cot_strict`, `maj<k>_cot_flexible`
(the majority answer right). predictions.jsonl keeps every generation, both extractions
of each, the votes and each question's scores, so stage=compare pairs runs.
"""

from __future__ import annotations

import logging
from typing import Any

from medalign.data.records import QARecord
from medalign.eval import metrics as M
from medalign.eval.choice import _add_breakdowns
from medalign.eval.cot import cot_prompt, extract_flexible, extract_strict, majority

log = logging.getLogger(__name__)
EXTRACTIONS = ("strict", "flexible")
COT_SUFFIX = ":cot"  # eval.also_cot: a dataset's CoT scores beside its own mode's


def cot_key(dataset: str) -> str:
    """Where eval.also_cot keeps a dataset's CoT results: `medqa` -> `medqa:cot`."""
    return dataset + COT_SUFFIX


def base_dataset(key: str) -> str:
    """The dataset a results key scored: `medqa:cot` -> `medqa`."""
    return key.removesuffix(COT_SUFFIX)


def protocol(cfg: Any) -> str:
    """The protocol a cot score was measured under, as tables and stage=compare name it."""
    if cfg.samples > 1:
        return f"cot maj@{cfg.samples} T={cfg.temperature:g}"
    return "cot greedy" if cfg.temperature == 0 else f"cot sampled T={cfg.temperature:g}"


def max_new_tokens(cfg: Any, dataset: str) -> int:
    """eval.max_new_tokens_per_dataset.<dataset>, else eval.max_new_tokens."""
    return int((cfg.max_new_tokens_per_dataset or {}).get(dataset, cfg.max_new_tokens))


def render(tokenizer: Any, prompts: list[str], where: str) -> tuple[list[str], bool]:
    """(texts, add_special_tokens): each prompt as the user's turn of the model's chat
    template, or the raw prompt for a model without one."""
    from medalign.models.inference import render_chat

    if getattr(tokenizer, "chat_template", None):
        return [
            render_chat(tokenizer, [{"role": "user", "content": p}], where) for p in prompts
        ], False
    return prompts, True


def generate(
    ctx: Any, texts: list[str], add_special: bool, dataset: str
) -> tuple[list[list[str]], list[list[bool]] | None]:
    """(k generations per text, whether each ended at a stop token; None where the backend
    does not say): k = eval.samples, greedy at temperature 0, else sampled with seed
    eval.seed."""
    from medalign.config import GenerateConfig
    from medalign.models.inference import text_completions

    cfg = ctx.cfg
    k = cfg.samples
    sampled = cfg.temperature > 0
    settings = GenerateConfig(
        input=None,
        output=None,
        batch_size=cfg.batch_size,
        max_new_tokens=max_new_tokens(cfg, dataset),
        do_sample=sampled,
        temperature=cfg.temperature if sampled else 1.0,
        top_p=1.0,
        system_prompt=None,
    )
    if sampled:
        import torch

        torch.manual_seed(cfg.seed)
    # a chat template carries its own BOS; a raw prompt follows lm-eval's rule
    # (eval.add_bos_token, null: the tokenizer's own special tokens)
    bos = add_special and cfg.add_bos_token is not False
    stopped: list[bool] = []
    flat = text_completions(
        ctx.model,
        ctx.tokenizer,
        [t for t in texts for _ in range(k)],
        settings,
        where=f"cot {dataset}",
        backend=cfg.generation_backend,
        add_special_tokens=bos,
        stopped=stopped,
    )
    ended = [stopped[i * k : (i + 1) * k] for i in range(len(texts))]
    return [flat[i * k : (i + 1) * k] for i in range(len(texts))], (
        ended if len(stopped) == len(flat) else None
    )


def score_cot(task: Any, ctx: Any, records: list[QARecord]) -> tuple[dict, list[dict]]:
    """(result, predictions) of `task` on `records` under eval.mode=cot."""
    cfg = ctx.cfg
    name = task.cfg.name
    prompts = [cot_prompt(task, r, cfg.prompt) for r in records]
    texts, add_special = render(ctx.tokenizer, prompts, f"eval.mode=cot {name}")
    outputs, ended = generate(ctx, texts, add_special, name)
    k = cfg.samples
    per_question: dict[str, list[float]] = {}
    preds = []
    for i, (record, answers) in enumerate(zip(records, outputs, strict=True)):
        choices, gold = task.choices(record), task.gold(record)
        extracted = {
            "strict": [extract_strict(a, choices) for a in answers],
            "flexible": [extract_flexible(a, choices, record.options) for a in answers],
        }
        scores: dict[str, float] = {}
        for how, found in extracted.items():
            scores[f"acc_cot_{how}"] = sum(f == gold for f in found) / k
            scores[f"unparsed_cot_{how}"] = sum(f is None for f in found) / k
            if k > 1:
                scores[f"maj{k}_cot_{how}"] = float(majority(found) == gold)
        for metric, value in scores.items():
            per_question.setdefault(metric, []).append(value)
        preds.append(
            {
                "id": record.id,
                "gold": gold,
                "predicted": majority(extracted["strict"]),
                "predicted_flexible": majority(extracted["flexible"]),
                "generations": answers,
                "strict": extracted["strict"],
                "flexible": extracted["flexible"],
                "correct_strict": [f == gold for f in extracted["strict"]],
                "correct_flexible": [f == gold for f in extracted["flexible"]],
                "cut_at_max_new_tokens": [not e for e in ended[i]] if ended else None,
                "scores": scores,
            }
        )
    result = {
        "n": len(records),
        "protocol": protocol(cfg),
        "samples": k,
        "temperature": cfg.temperature,
        "max_new_tokens": max_new_tokens(cfg, name),
        "prompt": cfg.prompt,
        "metrics": {m: M.with_ci(v, cfg.bootstrap, cfg.seed) for m, v in per_question.items()},
    }
    if ended is not None:
        cut = sum(not e for row in ended for e in row)
        result["cut_at_max_new_tokens"] = cut  # generations that never reached a stop
        if cut:
            log.warning(
                "%s: %d of %d answers stopped at max_new_tokens=%d, before their end (their "
                "reasoning may be cut short: 'eval.max_new_tokens_per_dataset={%s:512}')",
                name,
                cut,
                len(records) * k,
                max_new_tokens(cfg, name),
                name,
            )
    correct = per_question.get("acc_cot_strict", [])
    _add_breakdowns(task, result, records, correct, [p["predicted"] for p in preds], preds)
    return result, preds
