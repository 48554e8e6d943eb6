"""Decontamination on the real samples in ../shared/data: rows flagged by the previous
rule (any shared 13-gram) and by the current one (boilerplate n-grams ignored, a minimum
overlap with one eval row), for sets that share no question, sets that share all, and
lightly edited copies.

    python bench/bench_decontaminate.py        # prints a markdown table
"""

from __future__ import annotations

import dataclasses

from bench_eval import SHARED

from medalign.compose import catalogue
from medalign.data.decontaminate import EvalIndex, decontaminate
from medalign.data.loading import load_records

RULES = {
    "previous (any shared 13-gram)": {"boilerplate_rows": None, "min_overlap": 0.0},
    "boilerplate > 5 rows ignored": {"boilerplate_rows": 5, "min_overlap": 0.0},
    "overlap >= 0.5": {"boilerplate_rows": None, "min_overlap": 0.5},
    "current default (both)": {"boilerplate_rows": 5, "min_overlap": 0.5},
}


def _records(name: str, rel: str, **changes: object) -> list:
    cfg = catalogue(name)
    cfg = dataclasses.replace(cfg, path=str(SHARED / rel), **changes)
    return load_records(cfg).records


def edited(records: list, every: int) -> list:
    """Lightly edited copies: every `every`-th word of the question replaced."""
    out = []
    for r in records:
        words = r.question.split(" ")
        words = [w if (i + 1) % every else "edited" for i, w in enumerate(words)]
        out.append(dataclasses.replace(r, id=f"{r.id}-edit", question=" ".join(words)))
    return out


def pairs() -> list[tuple[str, list, list]]:
    """(what, eval rows, training rows)."""
    medqa4 = _records("medqa", "medqa/US_4_options_phrases_no_exclude_test_sample.jsonl", options=4)
    medqa5 = _records("medqa", "medqa/US_test_sample.jsonl", options=5)
    medmcqa = _records("medmcqa", "medmcqa/dev_converted_sample.json")
    train = _records("medmcqa", "medmcqa/train.sample.json", cop_base=1)
    pubmedqa = _records("pubmedqa", "pubmedqa/ori_pqal_sample.json")
    half = len(medqa4) // 2
    return [
        ("MedQA 4-opt: 2nd half vs 1st half (distinct)", medqa4[:half], medqa4[half:]),
        ("MedQA 5-opt vs 4-opt (same questions)", medqa4, medqa5),
        (
            "MedQA 4-opt 1st half, copies with every 15th word edited",
            medqa4[:half],
            edited(medqa4[:half], 15),
        ),
        (
            "MedQA 4-opt 1st half, copies with every 8th word edited",
            medqa4[:half],
            edited(medqa4[:half], 8),
        ),
        ("MedMCQA dev: 2nd half vs 1st half", medmcqa[:150], medmcqa[150:]),
        ("MedMCQA train sample vs dev", medmcqa, train),
        ("PubMedQA: 2nd half vs 1st half", pubmedqa[:100], pubmedqa[100:]),
    ]


def measure() -> dict:
    if not SHARED.is_dir():
        return {"status": f"not measured: {SHARED} absent"}
    rows = []
    for what, eval_rows, train_rows in pairs():
        row = {"pair": what, "train_rows": len(train_rows)}
        for label, kwargs in RULES.items():
            index = EvalIndex(13, **kwargs)
            index.add("eval", eval_rows)
            result = decontaminate(train_rows, index)
            row[label] = result.counts["eval"]
        rows.append(row)
    return {"rows": rows}


def markdown(result: dict) -> str:
    if "status" in result:
        return result["status"]
    head = "| pair | rows | " + " | ".join(RULES) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(RULES)]
    for row in result["rows"]:
        cells = [f"{row[k]['exact']} exact + {row[k]['near']} near" for k in RULES]
        lines.append(f"| {row['pair']} | {row['train_rows']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(measure()))
