"""Synthetic datasets at real scale, in the real file formats, built from real rows.

    python bench/synthetic.py <out dir> [train rows]     # <out>/medmcqa/train.json + dev.json ...

The real MedMCQA/MedQA/PubMedQA samples of ../shared/data (see its README) are a few
hundred rows; the benchmarks need 20k-180k training rows and full-size evaluation sets.
Row k is a real row with its question's words shuffled by a seeded RNG (same vocabulary
and token lengths, but no 13-gram shared with the real dev rows, so decontamination
keeps it) and its options drawn from other real rows; ids are unique.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def medmcqa_rows(n: int, seed: int = 0, prefix: str = "syn") -> list[dict]:
    """`n` MedMCQA rows in the original JSON Lines schema (1-indexed `cop`)."""
    real = _jsonl(SHARED / "medmcqa" / "dev_converted_sample.json")
    real += _jsonl(SHARED / "medmcqa" / "train.sample.json")
    rng = random.Random(seed)
    options = [row[f] for row in real for f in ("opa", "opb", "opc", "opd")]
    rows = []
    for k in range(n):
        base = real[k % len(real)]
        row = dict(base)
        row["question"] = _shuffled(base["question"], rng)
        for f in ("opa", "opb", "opc", "opd"):
            row[f] = rng.choice(options)
        row["cop"] = rng.randint(1, 4)
        row["id"] = f"{prefix}-{k:07d}"
        rows.append(row)
    return rows


def medqa_rows(n: int, seed: int = 1) -> list[dict]:
    """`n` MedQA 4-option rows (question, options A-D, answer_idx, answer, meta_info)."""
    real = _jsonl(next((SHARED / "medqa").glob("*4_options*")))
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        row = dict(real[k % len(real)])
        if k >= len(real):
            row["question"] = _shuffled(row["question"], rng)
        rows.append(row)
    return rows


def pubmedqa_rows(n: int, seed: int = 2) -> dict[str, dict]:
    """`n` PubMedQA PQA-L rows keyed by a synthetic PMID (ori_pqal.json format)."""
    real = list(json.loads(next((SHARED / "pubmedqa").glob("*.json")).read_text()).values())
    rng = random.Random(seed)
    out = {}
    for k in range(n):
        row = dict(real[k % len(real)])
        if k >= len(real):
            row["QUESTION"] = _shuffled(row["QUESTION"], rng)
        out[str(90000000 + k)] = row
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def medmcqa_root(out: Path, train_rows: int, dev_rows: int = 300) -> Path:
    """A data_root with medmcqa/train.json (synthetic) and dev.json (synthetic, other ids)."""
    write_jsonl(out / "medmcqa" / "train.json", medmcqa_rows(train_rows))
    write_jsonl(out / "medmcqa" / "dev.json", medmcqa_rows(dev_rows, seed=99, prefix="dev"))
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1])
    medmcqa_root(target, int(sys.argv[2]) if len(sys.argv) > 2 else 20000)
    print(target)
