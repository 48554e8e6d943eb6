"""Parity with lm-evaluation-harness 0.4.13, question by question (`make bench`, or
`python bench/bench_lmeval.py [n]`).

lm-eval gets the raw dataset files of ../shared/data through its own task definitions:
the installed `medqa_4options`, `medmcqa` and `pubmedqa` YAMLs and their `doc_to_text`
functions, copied next to a local JSON of the raw rows (only the dataset source and the
split change; lm-eval's prompt functions strip nothing), and the six MMLU-medical
`mmlu_<subject>` YAMLs with their `_default_template_yaml` over MMLU's headerless CSV
rows (../shared/data/mmlu/test when present, else the project's example rows in
medalign/data/examples/mmlu_medical/test), one row of the table for the six subjects.
medalign renders the same raw text with the dataset Task's `loglik_item` and scores it
with `score_choices`. The task folders, lm-eval's model and run are medalign's own
`eval.backend=lm_eval` functions (medalign/eval/harness.py). Both run on the tiny model
twice: with its own tokenizer (no BOS) and with the same tokenizer given a LLaMA-style
BOS-adding post-processor. Reported per dataset and tokenizer: the
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

from medalign.data.records import BadRows, QARecord
from medalign.eval.harness import (
    hf_model,
    local_task_yaml,
    loglik_scores,
    run_tasks,
    strip_data_keys,
)
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


def read_mmlu(folder: Path, n: int) -> list[tuple[str, list[tuple[dict, QARecord]]]]:
    """MMLU's `<subject>_test.csv` (question, A, B, C, D, answer letter) -> the `cais/mmlu`
    fields lm-eval reads (question, subject, choices, answer index), per subject."""
    from medalign.data.files import read_csv_rows
    from medalign.tasks.mmlu_medical import LETTERS, SUBJECTS, to_record

    out = []
    for subject in SUBJECTS:
        file = folder / f"{subject}_test.csv"
        pairs = []
        for number, row in read_csv_rows(file)[:n]:
            record = to_record(file, number, row, subject, BadRows(file.name, "error"))
            assert record is not None, (file, number)
            doc = {"question": row[0], "subject": subject, "choices": row[1:5]}
            pairs.append(({**doc, "answer": LETTERS.index(row[5])}, record))
        out.append((subject, pairs))
    return out


def mmlu_folder() -> Path:
    """MMLU's test CSVs: ../shared/data/mmlu/test when present, else the project's examples."""
    shared = SHARED / "mmlu" / "test"
    if shared.is_dir():
        return shared
    return Path(__file__).resolve().parent.parent / "medalign/data/examples/mmlu_medical/test"


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
}


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
    from medalign.data.loading import get_task

    item = get_task(catalogue(fmt)).loglik_item(record)
    return item.context, item.choices, item.gold


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def _acc(scores: list[list[float]], gold: list[int]) -> float:
    return round(sum(_argmax(s) == g for s, g in zip(scores, gold, strict=True)) / len(gold), 4)


def _loader_items(name: str, n: int) -> list[tuple[str, list[str]]]:
    """The same rows through medalign's loaders, for the reference column (the MC loaders
    strip question and option text; MMLU's keeps it, as its template strips the question)."""
    import dataclasses

    from medalign.compose import catalogue
    from medalign.data.loading import load_records

    if name == MMLU:
        from medalign.tasks.mmlu_medical import SUBJECTS

        cfg = dataclasses.replace(catalogue(MMLU), path=str(mmlu_folder().parent), split="test")
        records = load_records(cfg).records
        by_subject = [[r for r in records if r.meta["subject"] == s][:n] for s in SUBJECTS]
        return [medalign_item(MMLU, r)[:2] for group in by_subject for r in group]
    _, _, _, rel, _, fmt, changes = DATASETS[name]
    cfg = dataclasses.replace(catalogue(fmt), path=str(SHARED / rel), **changes)
    return [medalign_item(fmt, r)[:2] for r in load_records(cfg).records[:n]]


MMLU = "mmlu_medical"


def _write_tasks(tmp: Path, n: int) -> dict[str, list[tuple[str, list[tuple[dict, QARecord]]]]]:
    """Local lm-eval task folders under tmp/tasks: {dataset: [(lm-eval task, rows)]}."""
    import lm_eval.tasks

    installed = Path(lm_eval.tasks.__file__).parent
    data: dict[str, list[tuple[str, list[tuple[dict, QARecord]]]]] = {}
    for name, (folder, yaml_name, module, rel, reader, _, _) in DATASETS.items():
        rows = reader(SHARED / rel, n)
        rows_file = tmp / f"{name}.jsonl"
        rows_file.write_text("".join(json.dumps(doc) + "\n" for doc, _ in rows))
        task_dir = tmp / "tasks" / name
        task_dir.mkdir(parents=True)
        if module:
            shutil.copy(installed / folder / module, task_dir / module)
        task = f"medalign_{name}"
        (task_dir / f"{name}.yaml").write_text(
            local_task_yaml(installed / folder / yaml_name, task, rows_file)
        )
        data[name] = [(task, rows)]
    mmlu_dir, data[MMLU] = tmp / "tasks" / MMLU, []
    mmlu_dir.mkdir(parents=True)
    default = installed / "mmlu" / "default"
    template = default / "_default_template_yaml"
    (mmlu_dir / template.name).write_text(strip_data_keys(template.read_text()))
    for subject, rows in read_mmlu(mmlu_folder(), n):
        rows_file = tmp / f"mmlu_{subject}.jsonl"
        rows_file.write_text("".join(json.dumps(doc) + "\n" for doc, _ in rows))
        task = f"medalign_mmlu_{subject}"
        (mmlu_dir / f"mmlu_{subject}.yaml").write_text(
            local_task_yaml(default / f"mmlu_{subject}.yaml", task, rows_file)
        )
        data[MMLU].append((task, rows))
    return data


def _diffs(ours: list[list[float]], theirs: list[list[float]]) -> list[float]:
    return [
        abs(a - b) for o, t in zip(ours, theirs, strict=True) for a, b in zip(o, t, strict=True)
    ]


def measure(n: int = 100, batch_size: int = 16) -> dict:
    try:
        import lm_eval  # noqa: F401
        from lm_eval.tasks import TaskManager
    except ImportError:
        return {"status": "not measured: lm-eval not installed (pip install -e '.[bench]')"}
    if not SHARED.is_dir():
        return {"status": f"not measured: the raw data samples are absent ({SHARED})"}
    from medalign.config import ModelConfig, QuantConfig
    from medalign.eval.loglik import score_choices
    from medalign.models.load import load_causal_lm, load_tokenizer

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = _write_tasks(tmp, n)
        manager = TaskManager(include_path=str(tmp / "tasks"))
        tasks = [task for parts in data.values() for task, _ in parts]
        for label, model_dir in _model_dirs(tmp).items():
            lm = hf_model(str(model_dir), dtype="float32", batch_size=batch_size)
            start = time.perf_counter()
            out = run_tasks(lm, manager, tasks, bootstrap=0)
            lm_seconds = time.perf_counter() - start
            cfg = ModelConfig(path=str(model_dir))
            model = load_causal_lm(cfg, QuantConfig(), str(model_dir)).eval()
            tokenizer = load_tokenizer(cfg, str(model_dir))
            total = sum(len(rows) for parts in data.values() for _, rows in parts)
            for name, parts in data.items():
                theirs = [s for task, _ in parts for s in loglik_scores(out, task)]
                fmt = MMLU if name == MMLU else DATASETS[name][5]
                items = [medalign_item(fmt, record) for _, pairs in parts for _, record in pairs]
                score_choices(model, tokenizer, [i[:2] for i in items[:4]], batch_size)  # warm-up
                start = time.perf_counter()
                ours = score_choices(model, tokenizer, [i[:2] for i in items], batch_size)
                our_seconds = time.perf_counter() - start
                stripped = score_choices(model, tokenizer, _loader_items(name, n), batch_size)
                gold = [i[2] for i in items]
                same = sum(
                    _argmax(o) == _argmax(t) for o, t in zip(ours.scores, theirs, strict=True)
                )
                rows.append(
                    {
                        "dataset": name if name != MMLU else f"{MMLU} ({len(parts)} subjects)",
                        "tokenizer": label,
                        "questions": len(items),
                        "same_predictions": same,
                        "max_loglik_diff": max(_diffs(ours.scores, theirs)),
                        "lm_eval_acc": _acc(theirs, gold),
                        "medalign_acc": _acc(ours.scores, gold),
                        "truncated": ours.n_truncated,
                        "context_starts_with_bos": all(
                            enc == tokenizer.bos_token_id
                            for enc in _first_context_tokens(tokenizer, items)
                        ),
                        "loader_max_loglik_diff": max(_diffs(stripped.scores, theirs)),
                        "loader_questions_differing": sum(
                            any(abs(a - b) > TOLERANCE for a, b in zip(o, t, strict=True))
                            for o, t in zip(stripped.scores, theirs, strict=True)
                        ),
                        "lm_eval_examples_per_s": round(total / lm_seconds, 1),
                        "medalign_examples_per_s": round(len(items) / our_seconds, 1),
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
