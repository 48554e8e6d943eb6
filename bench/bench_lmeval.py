"""Our MCQ scoring side by side with lm-evaluation-harness (when installed): same tiny
model, same MedQA 4-option questions as a local JSON task mirroring lm-eval's
`medqa_4options`, same prompt and choices. Reports accuracy of both, per-example
agreement of the predicted letter, and examples/s of each.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench_eval import REAL

TASK = """task: medalign_medqa4
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{sent1}}}}\\nA. {{{{ending0}}}}\\nB. {{{{ending1}}}}\\n\\
  C. {{{{ending2}}}}\\nD. {{{{ending3}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def measure(n: int = 100, batch_size: int = 16) -> dict:
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        return {"status": "not measured: lm-eval not installed (pip install lm-eval==0.4.13)"}
    import dataclasses

    from medalign.eval.prompts import loglik_item

    from medalign.compose import catalogue
    from medalign.config import ModelConfig, QuantConfig
    from medalign.data.loading import load_records
    from medalign.eval.loglik import score_fast
    from medalign.models.load import load_causal_lm, load_tokenizer, model_source

    cfg = catalogue("medqa")
    cfg = (
        dataclasses.replace(cfg, path=str(REAL), options=4)
        if REAL.is_file()
        else dataclasses.replace(cfg, options=4)
    )
    records = load_records(cfg).records[:n]
    source = model_source(ModelConfig())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "medqa.jsonl")
        with data.open("w") as handle:
            for r in records:
                row = {"sent1": r.question, "label": "ABCD".index(str(r.answer))}
                row.update({f"ending{i}": r.options["ABCD"[i]] for i in range(4)})
                handle.write(json.dumps(row) + "\n")
        Path(tmp, "task.yaml").write_text(TASK.format(data=data))
        from lm_eval.models.huggingface import HFLM

        lm = HFLM(pretrained=source, dtype="float32", batch_size=batch_size, device="cpu")
        start = time.perf_counter()  # from here: task setup and scoring
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=["medalign_medqa4"],
            task_manager=TaskManager(include_path=tmp),
            log_samples=True,
        )
        lm_seconds = time.perf_counter() - start
    samples = sorted(out["samples"]["medalign_medqa4"], key=lambda s: s["doc_id"])
    theirs = [max(range(4), key=lambda i: s["filtered_resps"][i][0]) for s in samples]
    model = load_causal_lm(ModelConfig(), QuantConfig(), source).eval()
    tokenizer = load_tokenizer(ModelConfig(), source)
    items = [loglik_item(r, "medqa")[:2] for r in records]
    score_fast(model, tokenizer, items[:4], batch_size)  # warm-up, as lm-eval had its own
    start = time.perf_counter()
    scores = score_fast(model, tokenizer, items, batch_size)
    our_seconds = time.perf_counter() - start
    ours = [max(range(4), key=s.__getitem__) for s in scores]
    from lm_eval.api.instance import Instance

    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=(ctx, f" {c}"), idx=i)
        for ctx, choices in items
        for i, c in enumerate(choices)
    ]
    start = time.perf_counter()
    lm.loglikelihood(requests, disable_tqdm=True)
    lm_scoring_seconds = time.perf_counter() - start
    gold = ["ABCD".index(str(r.answer)) for r in records]
    return {
        "questions": len(records),
        "lm_eval_acc": round(out["results"]["medalign_medqa4"]["acc,none"], 4),
        "medalign_acc": round(sum(p == g for p, g in zip(ours, gold, strict=True)) / len(gold), 4),
        "same_predictions": f"{sum(a == b for a, b in zip(ours, theirs, strict=True))}/{len(ours)}",
        "lm_eval_examples_per_s": round(len(records) / lm_seconds, 1),
        "lm_eval_scoring_examples_per_s": round(len(records) / lm_scoring_seconds, 1),
        "medalign_examples_per_s": round(len(records) / our_seconds, 1),
        "note": "timed after the model is loaded; lm-eval end to end includes its task setup, "
        "scoring only is its loglikelihood() on the same (prompt, choice) pairs",
    }


def markdown(row: dict) -> str:
    if "status" in row:
        return row["status"]
    return "\n".join(
        [
            "| questions | lm-eval acc | medalign acc | same predictions "
            "| lm-eval ex/s (end to end / scoring only) | medalign ex/s |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {row['questions']} | {row['lm_eval_acc']} | {row['medalign_acc']} | "
            f"{row['same_predictions']} | {row['lm_eval_examples_per_s']} / "
            f"{row['lm_eval_scoring_examples_per_s']} | "
            f"{row['medalign_examples_per_s']} |",
            "",
            f"({row['note']})",
        ]
    )


if __name__ == "__main__":
    print(markdown(measure()))
