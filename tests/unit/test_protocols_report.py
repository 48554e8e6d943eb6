"""The curriculum's CoT-against-log-likelihood table (issue 32): the same model on the same
questions, paired, with McNemar's exact p as scipy computes it and Holm over the stages."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from scipy.stats import binomtest

from medalign.compare.engine import CompareSettings
from medalign.reports.protocols import protocol_rows, protocols_section
from tests.run_fixtures import write_eval_run


def _scores(n: int, rate: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < rate) for _ in range(n)]


def _curriculum(run: Path, cot: dict[str, list[float]], loglik: list[float]) -> dict:
    stages = []
    for k, (name, reasoned) in enumerate(cot.items()):
        folder = write_eval_run(
            run / f"{k}-{name}",
            {"medqa": loglik, "medqa:cot": reasoned},
            metric_of={"medqa:cot": "acc_cot_strict"},
        )
        stages.append({"name": name, "dir": str(folder), "status": "done", "metrics": {}})
    manifest = {"kind": "curriculum", "stages": stages}
    (run / "manifest.json").write_text(json.dumps(manifest))  # what resolve_entry reads
    return manifest


def test_a_stage_that_reasons_better_is_called_so_with_mcnemars_p(tmp_path: Path) -> None:
    loglik = _scores(300, 0.3, 1)
    cot = {"before": loglik, "medqa": _scores(300, 0.7, 2)}
    rows = protocol_rows(tmp_path, _curriculum(tmp_path, cot, loglik), CompareSettings())
    same, better = rows
    assert same["stage"] == "before" and same["diff"] == 0 and same["verdict"] == "not significant"
    b = sum(1 for x, y in zip(loglik, cot["medqa"], strict=True) if x > y)
    c = sum(1 for x, y in zip(loglik, cot["medqa"], strict=True) if y > x)
    assert (better["b"], better["c"]) == (b, c)
    assert better["p"] == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue)
    assert better["p_holm"] == pytest.approx(min(1.0, 2 * better["p"]))  # Holm over 2 rows
    assert better["verdict"] == "CoT better" and better["n"] == 300


def test_the_section_names_n_the_intervals_and_the_test(tmp_path: Path) -> None:
    loglik = _scores(200, 0.5, 3)
    manifest = _curriculum(tmp_path, {"medqa": _scores(200, 0.2, 4)}, loglik)
    section = protocols_section(tmp_path, manifest, CompareSettings())
    assert section is not None
    text = section.markdown()
    assert "McNemar" in text and "| medqa | medqa | 200 |" in text and "CoT worse" in text
    assert "<table>" in "".join(section.html())


def test_no_section_where_nothing_was_scored_both_ways(tmp_path: Path) -> None:
    folder = write_eval_run(tmp_path / "0-before", {"medqa": _scores(50, 0.5, 5)})
    manifest = {"kind": "curriculum", "stages": [{"name": "before", "dir": str(folder)}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert protocols_section(tmp_path, manifest, CompareSettings()) is None
