"""Parity with lm-evaluation-harness 0.4.13, question by question (`make bench`, or
`python bench/bench_lmeval.py [n]`).

lm-eval gets the raw dataset files of ../shared/data through its own task definitions:
the installed `medqa_4options`, `medmcqa` and `pubmedqa` YAMLs and their `doc_to_text`
functions, copied next to a local JSON of the raw rows (only the dataset source and the
split change; lm-eval's prompt functions strip nothing). medalign renders the same raw
text with the dataset Task's `loglik_item` and scores it with `score_choices`. Both
run on the tiny model twice: with its own tokenizer (no BOS) and with the same tokenizer
given a LLaMA-style BOS-adding post-processor. Reported per dataset and tokenizer: the
predictions that agree, the largest per-choice log-likelihood difference (target: all
agree, every difference < 1e-4), questions cut to the model's length, examples/s; and,
for reference, the largest difference when medalign reads the rows through its own
loaders (which strip question and option text).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_eval import SHARED

from medalign.data.records import QARecord
from medalign.models.builders import with_bos_post_processor

TOLERANCE = 1e-4
Reader = Callable[[Path, int], list[tuple[dict, QARecord]]]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_medqa(path: Path, n: int) -> list[tuple[dict, QARecord]]:
    """Original MedQA 4-option rows -> lm-eval's GBaker/MedQA-USMLE-4-options-hf fields."""
    out = []
    for i, row in enumerate(_jsonl(path)[:n]):
        doc = {"sent1": row["question"], "label": "ABCD".index(row["answer_idx"])}
        doc.update({f"ending{k}": row["options"][letter] for k, letter in enumerate("ABCD")})
        record = QARecord(str(i), row["question"], [], row["answer_idx"], dict(row["options"]))
        out.append((doc, record))
    return out


def read_medmcqa(path: Path, n: int) -> list[tuple[dict, QARecord]]:
    """Original MedMCQA rows (1-indexed `cop`) -> the hub fields lm-eval reads (0-indexed)."""
    out = []
    for i, row in enumerate(_jsonl(path)[:n]):
        fields = ["opa", "opb", "opc", "opd"]
        doc = {"question": row["question"], "cop": row["cop"] - 1, **{f: row[f] for f in fields}}
        options = dict(zip("ABCD", (row[f] for f in fields), strict=True))
        out.append((doc, QARecord(str(i), row["question"], [], "ABCD"[row["cop"] - 1], options)))
    return out


def read_pubmedqa(path: Path, n: int) -> list[tuple[dict, QARecord]]:
    """`ori_pqal.json` rows -> bigbio `pubmed_qa_labeled_fold0_source` fields (the same)."""
    out = []
    for pmid, row in list(json.loads(path.read_text()).items())[:n]:
        doc = {k: row[k] for k in ("QUESTION", "CONTEXTS", "final_decision")}
        record = QARecord(pmid, row["QUESTION"], list(row["CONTEXTS"]), row["final_decision"])
        out.append((doc, record))
    return out


# name: (lm-eval task folder, its YAML, its doc_to_text module, raw file, reader,
#        medalign format for loglik_item, medalign loader kwargs for the reference column)
DATASETS: dict[str, tuple[str, str, str, str, Reader, str, dict[str, Any]]] = {
    "medqa_4options": (
        "medqa",
        "medqa.yaml",
        "preprocess_medqa.py",
        "medqa/US_4_options_phrases_no_exclude_test_sample.jsonl",
        read_medqa,
        "medqa",
        {"options": 4},
    ),
    "medmcqa": (
        "medmcqa",
        "medmcqa.yaml",
        "utils_medmcqa.py",
        "medmcqa/dev_converted_sample.json",
        read_medmcqa,
        "medmcqa",
        {},
    ),
    "pubmedqa": (
        "pubmedqa",
        "pubmedqa.yaml",
        "preprocess_pubmedqa.py",
        "pubmedqa/ori_pqal_sample.json",
        read_pubmedqa,
        "pubmedqa",
        {},
    ),
    # HOOK (MMLU-medical, for the lead): add one entry per subject (anatomy,
    # clinical_knowledge, college_biology, college_medicine, medical_genetics,
    # professional_medicine), e.g.
    # "mmlu_anatomy": ("mmlu/default", "mmlu_anatomy.yaml", "", "mmlu/test/anatomy_test.csv",
    #                  read_mmlu, "mmlu", {}),
    # with `read_mmlu` turning the headerless CSV (question, A, B, C, D, answer) into the
    # hub fields lm-eval reads (question, subject, choices, answer index) and a QARecord,
    # and a medalign `loglik_item` format "mmlu". MMLU's YAMLs are Jinja templates with
    # `include: _default_template_yaml` (no module to copy: pass ""): copy that template
    # next to the task too, and check that its split keys (validation/fewshot: dev) do not
    # name splits the local JSON lacks.
}


def _task_yaml(installed: Path, name: str, data: Path) -> str:
    """lm-eval's own task YAML with only the dataset source and split replaced."""
    replaced = ("task:", "dataset_path:", "dataset_name:", "training_split:")
    replaced += ("validation_split:", "test_split:", "fewshot_split:")
    kept = [line for line in installed.read_text().splitlines() if not line.startswith(replaced)]
    head = [
        f"task: medalign_{name}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {data}",
        "test_split: test",
    ]
    return "\n".join(head + kept) + "\n"


_with_bos = with_bos_post_processor  # the tiny tokenizer, BOS-adding


def _model_dirs(tmp: Path) -> dict[str, Path]:
    from transformers import AutoTokenizer

    from medalign.config import ModelConfig
    from medalign.models.load import model_source

    plain = Path(model_source(ModelConfig()))
    bos = tmp / "tiny_bos"
    bos.mkdir()
    for path in plain.iterdir():
        if path.is_file():
            shutil.copy(path, bos / path.name)
    _with_bos(AutoTokenizer.from_pretrained(plain)).save_pretrained(bos)
    return {"tiny": plain, "tiny + BOS post-processor": bos}


def medalign_item(fmt: str, record: QARecord) -> tuple[str, list[str], int]:
    """medalign's lm-eval prompt for a raw-text record (its Task's `loglik_item`):
    (context, choices, gold index)."""
    from medalign.compose import catalogue
    from medalign.tasks.base import get_task

    item = get_task(catalogue(fmt)).loglik_item(record)
    return item.context, item.choices, item.gold


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def _acc(scores: list[list[float]], gold: list[int]) -> float:
    return round(sum(_argmax(s) == g for s, g in zip(scores, gold, strict=True)) / len(gold), 4)


def _loader_items(name: str, n: int) -> list[tuple[str, list[str]]]:
    """The same rows through medalign's loaders (stripped text), for the reference column."""
    import dataclasses

    from medalign.compose import catalogue
    from medalign.data.loading import load_records

    _, _, _, rel, _, fmt, changes = DATASETS[name]
    cfg = dataclasses.replace(catalogue(fmt), path=str(SHARED / rel), **changes)
    return [medalign_item(fmt, r)[:2] for r in load_records(cfg).records[:n]]


def measure(n: int = 100, batch_size: int = 16) -> dict:
    try:
        import lm_eval
        import lm_eval.tasks
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        return {"status": "not measured: lm-eval not installed (pip install -e '.[bench]')"}
    if not SHARED.is_dir():
        return {"status": f"not measured: the raw data samples are absent ({SHARED})"}
    from medalign.config import ModelConfig, QuantConfig
    from medalign.eval.loglik import score_choices
    from medalign.models.load import load_causal_lm, load_tokenizer

    tasks_dir = Path(lm_eval.tasks.__file__).parent
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data: dict[str, list[tuple[dict, QARecord]]] = {}
        for name, (folder, yaml_name, module, rel, reader, _, _) in DATASETS.items():
            data[name] = reader(SHARED / rel, n)
            rows_file = tmp / f"{name}.jsonl"
            rows_file.write_text("".join(json.dumps(doc) + "\n" for doc, _ in data[name]))
            task_dir = tmp / "tasks" / name
            task_dir.mkdir(parents=True)
            if module:
                shutil.copy(tasks_dir / folder / module, task_dir / module)
            (task_dir / f"{name}.yaml").write_text(
                _task_yaml(tasks_dir / folder / yaml_name, name, rows_file)
            )
        for label, model_dir in _model_dirs(tmp).items():
            lm = HFLM(
                pretrained=str(model_dir), dtype="float32", batch_size=batch_size, device="cpu"
            )
            manager = TaskManager(include_path=str(tmp / "tasks"))
            start = time.perf_counter()
            out = lm_eval.simple_evaluate(
                model=lm,
                tasks=[f"medalign_{name}" for name in DATASETS],
                task_manager=manager,
                log_samples=True,
            )
            lm_seconds = time.perf_counter() - start
            cfg = ModelConfig(path=str(model_dir))
            model = load_causal_lm(cfg, QuantConfig(), str(model_dir)).eval()
            tokenizer = load_tokenizer(cfg, str(model_dir))
            total = sum(len(v) for v in data.values())
            for name, pairs in data.items():
                samples = sorted(out["samples"][f"medalign_{name}"], key=lambda s: s["doc_id"])
                theirs = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
                fmt = DATASETS[name][5]
                items = [medalign_item(fmt, record) for _, record in pairs]
                score_choices(model, tokenizer, [i[:2] for i in items[:4]], batch_size)  # warm-up
                start = time.perf_counter()
                ours = score_choices(model, tokenizer, [i[:2] for i in items], batch_size)
                our_seconds = time.perf_counter() - start
                stripped = score_choices(model, tokenizer, _loader_items(name, n), batch_size)
                gold = [i[2] for i in items]
                diffs = [
                    abs(a - b)
                    for o, t in zip(ours.scores, theirs, strict=True)
                    for a, b in zip(o, t, strict=True)
                ]
                loader_diffs = [
                    abs(a - b)
                    for o, t in zip(stripped.scores, theirs, strict=True)
                    for a, b in zip(o, t, strict=True)
                ]
                same = sum(
                    _argmax(o) == _argmax(t) for o, t in zip(ours.scores, theirs, strict=True)
                )
                rows.append(
                    {
                        "dataset": name,
                        "tokenizer": label,
                        "questions": len(pairs),
                        "same_predictions": same,
                        "max_loglik_diff": max(diffs),
                        "lm_eval_acc": _acc(theirs, gold),
                        "medalign_acc": _acc(ours.scores, gold),
                        "truncated": ours.n_truncated,
                        "context_starts_with_bos": all(
                            enc == tokenizer.bos_token_id
                            for enc in _first_context_tokens(tokenizer, items)
                        ),
                        "loader_max_loglik_diff": max(loader_diffs),
                        "loader_questions_differing": sum(
                            any(abs(a - b) > TOLERANCE for a, b in zip(o, t, strict=True))
                            for o, t in zip(stripped.scores, theirs, strict=True)
                        ),
                        "lm_eval_examples_per_s": round(total / lm_seconds, 1),
                        "medalign_examples_per_s": round(len(pairs) / our_seconds, 1),
                    }
                )
    ok = all(
        r["same_predictions"] == r["questions"] and r["max_loglik_diff"] < TOLERANCE for r in rows
    )
    return {"rows": rows, "parity": ok, "tolerance": TOLERANCE}


def _first_context_tokens(tokenizer: Any, items: list) -> list[int]:
    from medalign.eval.loglik import encode_batch

    return [enc[0][0][0] for enc in encode_batch(tokenizer, [i[:2] for i in items])]


def markdown(result: dict) -> str:
    if "status" in result:
        return result["status"]
    lines = [
        "| dataset | tokenizer | same predictions | max loglik diff | lm-eval acc | "
        "medalign acc | truncated | BOS first | via medalign loaders: max diff (questions "
        "> 1e-4) | ex/s lm-eval (all tasks, end to end) / medalign |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['dataset']} | {r['tokenizer']} | {r['same_predictions']}/{r['questions']} "
            f"| {r['max_loglik_diff']:.2e} | {r['lm_eval_acc']} | {r['medalign_acc']} "
            f"| {r['truncated']} | {'yes' if r['context_starts_with_bos'] else 'no'} "
            f"| {r['loader_max_loglik_diff']:.2e} ({r['loader_questions_differing']}) "
            f"| {r['lm_eval_examples_per_s']} / {r['medalign_examples_per_s']} |"
        )
    verdict = "identical" if result["parity"] else "NOT identical"
    lines += [
        "",
        f"Parity ({verdict}): every prediction agrees and every per-choice log-likelihood "
        f"is within {result['tolerance']:g} of lm-eval's. lm-eval reads the raw files "
        "through its own task YAMLs; the loader column is medalign's current loaders "
        "(stripped text) against the same lm-eval numbers.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100)))
