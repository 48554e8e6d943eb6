"""Loading and formatting throughput (rows/s) on each real sample file.

    python bench/bench_data.py        (make bench runs it)

Reads ../shared/data when present (the real public formats), else the bundled examples.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from medalign.compose import catalogue
from medalign.data.formatting import to_messages
from medalign.data.loading import EXAMPLES_DIR, load_records

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
FILES = [
    ("pubmedqa", "pubmedqa/ori_pqal_sample.json", {}),
    ("medmcqa", "medmcqa/dev_converted_sample.json", {}),
    ("medqa", "medqa/US_4_options_phrases_no_exclude_test_sample.jsonl", {"options": 4}),
    ("medqa", "medqa/US_test_sample.jsonl", {"options": 5}),
    ("radqa", "radqa/SYNTHETIC_radqa_format_fixture.json", {}),
]
EXAMPLES = [
    ("pubmedqa", "pubmedqa/ori_pqal.json", {"split": "all"}),
    ("medmcqa", "medmcqa/train.json", {}),
    ("medqa", "medqa/train.jsonl", {}),
    ("radqa", "radqa/train.json", {}),
]


def measure(repeats: int = 5) -> list[dict]:
    root, files = (SHARED, FILES) if SHARED.is_dir() else (EXAMPLES_DIR, EXAMPLES)
    rows = []
    for name, rel, changes in files:
        cfg = dataclasses.replace(catalogue(name), path=str(root / rel), **changes)
        load_s = format_s = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            records = load_records(cfg).records
            loaded = time.perf_counter()
            for record in records:
                to_messages(record, cfg)
            load_s = min(load_s, loaded - start)
            format_s = min(format_s, time.perf_counter() - loaded)
        rows.append(
            {
                "file": rel,
                "rows": len(records),
                "load_rows_per_s": round(len(records) / load_s),
                "format_rows_per_s": round(len(records) / format_s),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| file | rows | load rows/s | format rows/s |", "|---|---:|---:|---:|"]
    lines += [
        f"| {r['file']} | {r['rows']} | {r['load_rows_per_s']:,} | {r['format_rows_per_s']:,} |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(measure()))
