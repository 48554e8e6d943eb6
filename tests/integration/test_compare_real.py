"""stage=compare on real predictions: two tiny models scored by the built-in evaluator on
300 real MedMCQA dev and 120 real MedQA test questions (../shared/data), then checked
against references computed independently from the predictions files: the discordant
counts, statsmodels' exact McNemar, and a plain-numpy paired bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from medalign.compare.engine import CompareSettings, compare_groups
from medalign.compare.runs import group_by_seed, resolve_entry
from medalign.config import validate
from medalign.eval.report import write_reports
from medalign.run import run as run_stage
from tests.conftest import compose, shared_file
from tests.run_fixtures import save_adapter, tiny_dir

FILES = {
    "medmcqa": ("medmcqa", "dev_converted_sample.json"),
    "medqa": ("medqa", "US_4_options_phrases_no_exclude_test_sample.jsonl"),
}


def _evaluate(folder: Path, adapter: Path | None, overrides: list[str]) -> None:
    """The built-in evaluation of the tiny model (with `adapter`) into folder/eval."""
    from medalign.eval.runner import evaluate
    from medalign.models.init_from import load_model, resolve_init_from

    cfg = validate(compose(*overrides))
    point = resolve_init_from(str(adapter)) if adapter else None
    model, tokenizer, _ = load_model(cfg, point)
    results, predictions = evaluate(model, tokenizer, cfg)
    write_reports(folder / "eval", results, predictions, plots=False)
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed": 42, "adapter": str(adapter)}))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare_real")
    overrides = ["logger=none", "eval.datasets=[medmcqa,medqa]", "datasets.medqa.options=4"]
    overrides.append("eval.limits={medqa:120}")  # the long vignettes: 120 of 300
    for name, (folder, file) in FILES.items():
        overrides.append(f"datasets.{name}.path={shared_file(folder, file)}")
    adapter = root / "adapter"
    save_adapter(tiny_dir(), adapter, seed=3)
    _evaluate(root / "base", None, overrides)
    _evaluate(root / "tuned", adapter, overrides)
    return root / "base", root / "tuned"


def _correct(folder: Path, dataset: str) -> dict[str, float]:
    """Each question's 0/1 accuracy, from gold and predicted alone (not `scores`)."""
    rows = [json.loads(line) for line in (folder / "eval" / "predictions.jsonl").open()]
    return {r["id"]: float(r["predicted"] == r["gold"]) for r in rows if r["dataset"] == dataset}


def test_compare_agrees_with_independent_references_on_real_rows(two_runs) -> None:
    sm = pytest.importorskip("statsmodels.stats.contingency_tables")
    base, tuned = two_runs
    runs = [r for f in (base, tuned) for r in resolve_entry(str(f))]
    table = compare_groups(group_by_seed(runs), 0, CompareSettings(resamples=2000, seed=5))
    rows = {(r["dataset"], r["metric"]): r for r in table["rows"]}
    assert {d for d, _ in rows} == {"medmcqa", "medqa"}
    for dataset in ("medmcqa", "medqa"):
        a, b = _correct(base, dataset), _correct(tuned, dataset)
        assert len(a) == {"medmcqa": 300, "medqa": 120}[dataset] and set(a) == set(b)
        ids = sorted(a)
        x, y = np.array([a[i] for i in ids]), np.array([b[i] for i in ids])
        row = rows[(dataset, "acc")]
        counts = [[np.sum((x == 1) & (y == 1)), np.sum((x == 1) & (y == 0))]]
        counts.append([np.sum((x == 0) & (y == 1)), np.sum((x == 0) & (y == 0))])
        assert (row["b"], row["c"]) == (counts[0][1], counts[1][0])
        assert row["b"] + row["c"] > 0  # the adapter changed some answers
        assert row["p"] == pytest.approx(sm.mcnemar(counts, exact=True).pvalue, rel=1e-9)
        assert row["diff"] == pytest.approx(y.mean() - x.mean())
        draws = np.random.default_rng(5)
        d = y - x
        means = [d[draws.integers(0, len(d), size=len(d))].mean() for _ in range(2000)]
        low, high = np.quantile(means, [0.025, 0.975])
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-5)
        assert row["n"] == len(ids) and row["test"] == "mcnemar_exact"
    for metric in ("brier", "loglik"):  # continuous: the permutation test
        assert rows[("medqa", metric)]["test"] == "sign_flip"


def test_stage_compare_writes_its_outputs_and_refuses_before_writing(
    two_runs, tmp_path: Path
) -> None:
    from medalign.errors import MedalignError

    base, tuned = two_runs
    out = tmp_path / "compare"
    runs = f"compare.runs=[{base},{tuned}]"
    metrics = run_stage(
        compose("stage=compare", runs, "logger=none", "compare.resamples=1000"), out
    )
    saved = json.loads((out / "compare.json").read_text())
    assert metrics["compare/rows"] == len(saved["rows"]) > 0
    assert (out / "compare.md").read_text().startswith("# Comparison against base")
    assert (out / "compare.png").stat().st_size > 0
    refused = tmp_path / "refused"
    with pytest.raises(MedalignError, match="no predictions.jsonl"):
        run_stage(compose("stage=compare", f"compare.runs=[{base},{tmp_path}]"), refused)
    assert not refused.exists()  # nothing written for a bad input
