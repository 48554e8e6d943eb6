"""eval.backend=lm_eval: lm-evaluation-harness tasks on a run's model, folded into medalign's
reports, and equal to the built-in scorer on the same rows.

The local task folder tests/assets/lm_eval_tasks/ is lm-eval's own MMLU template over the
project's example MMLU CSV rows (medalign/data/examples/mmlu_medical/test/); its
data_files are relative to the repository root, so these tests run from there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from medalign.checks import check_components
from medalign.config import validate
from medalign.errors import MedalignError
from medalign.tasks.mmlu_medical import SUBJECTS
from tests.conftest import REPO, compose

TASKS = REPO / "tests" / "assets" / "lm_eval_tasks"
GROUP = "medalign_example_mmlu_medical"


def _lm_eval(*overrides: str) -> tuple[str, ...]:
    return (
        "stage=eval",
        "logger=none",
        "eval.backend=lm_eval",
        f"eval.lm_eval.include_path={TASKS}",
        "eval.lm_eval.include_defaults=false",
        *overrides,
    )


def test_an_unknown_task_is_one_error_listing_close_names() -> None:
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    cfg = validate(compose(*_lm_eval("eval.lm_eval.tasks=[medalign_example_mmlu_anatomi]")))
    with pytest.raises(MedalignError) as info:
        check_components(cfg)
    message = str(info.value)
    assert "unknown lm-eval task 'medalign_example_mmlu_anatomi'" in message
    assert "Close names: medalign_example_mmlu_anatomy" in message
    assert "\n" not in message


def test_no_tasks_or_a_missing_folder_is_refused_at_start_up(tmp_path: Path) -> None:
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    with pytest.raises(MedalignError, match="eval.lm_eval.tasks is empty"):
        check_components(validate(compose(*_lm_eval())))
    missing = tmp_path / "nowhere"
    cfg = validate(
        compose(*_lm_eval("eval.lm_eval.tasks=[x]", f"eval.lm_eval.include_path={missing}"))
    )
    with pytest.raises(MedalignError, match="is not a directory"):
        check_components(cfg)


def test_without_lm_eval_installed_one_line_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    from medalign.eval import harness

    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval -> ImportError
    monkeypatch.setattr(harness, "_MANAGERS", {})
    cfg = validate(compose(*_lm_eval(f"eval.lm_eval.tasks=[{GROUP}]")))
    with pytest.raises(MedalignError) as info:
        check_components(cfg)
    assert str(info.value) == (
        'eval.backend=lm_eval needs lm-evaluation-harness: pip install -e ".[lm_eval]"'
    )


def test_the_builtin_backend_needs_no_lm_eval_and_refuses_its_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    cfg = validate(compose("stage=eval"))
    assert cfg.eval.backend == "builtin"
    check_components(cfg)  # nothing asks for lm-eval
    with pytest.raises(MedalignError, match="add eval.backend=lm_eval"):
        check_components(validate(compose("stage=eval", "eval.lm_eval.tasks=[mmlu_anatomy]")))


def test_builtin_only_keys_are_refused_with_lm_eval() -> None:
    import dataclasses

    cfg = validate(compose(*_lm_eval(f"eval.lm_eval.tasks=[{GROUP}]")))
    for change in ({"limits": {"medqa": 5}}, {"splits": {"medqa": "dev"}}, {"mode": "generate"}):
        changed = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **change))
        with pytest.raises(MedalignError, match="read by the built-in backend only"):
            check_components(changed)


def test_lm_eval_output_folds_into_medalign_results_metrics_and_the_curriculum_table() -> None:
    """lm-eval's output shape (0.4.13) -> results.json entries, eval/<task>/<metric>
    names, predictions and the curriculum's table, without running a model."""
    from medalign.eval.harness import fold_results
    from medalign.eval.report import summary_markdown
    from medalign.eval.runner import flat_metrics
    from medalign.reports.results import results_table

    def mc(doc_id: int, lls: list[float], gold: int) -> dict:
        best = max(range(4), key=lls.__getitem__)
        return {
            "doc_id": doc_id,
            "target": gold,
            "arguments": [("Q", f" {c}") for c in "ABCD"],
            "filtered_resps": [(ll, False) for ll in lls],
            "filter": "none",
            "metrics": ["acc"],
            "acc": float(best == gold),
        }

    gen = [
        {
            "doc_id": i,
            "target": "4",
            "arguments": [("2+2=", {"until": ["\n"]})],
            "filtered_resps": [answer],
            "filter": "strict-match",
            "metrics": ["exact_match"],
            "exact_match": float(answer == "4"),
        }
        for i, answer in enumerate(["4", "5", "4"])
    ]
    out = {
        "results": {
            "mc_task": {"alias": "mc", "acc,none": 0.5, "acc_stderr,none": 0.5},
            "gen_task": {"exact_match,strict-match": 2 / 3, "exact_match_stderr,strict-match": 0.3},
            "both": {"acc,none": 0.5, "acc_stderr,none": 0.4},
        },
        "groups": {"both": {"acc,none": 0.5, "acc_stderr,none": 0.4}},
        "group_subtasks": {"both": ["mc_task", "gen_task"]},
        "configs": {
            "mc_task": {"output_type": "multiple_choice", "test_split": "test"},
            "gen_task": {"output_type": "generate_until", "test_split": "validation"},
        },
        "n-shot": {"mc_task": 0, "gen_task": 5},
        "samples": {
            "mc_task": [mc(1, [-1.0, -3.0, -2.0, -4.0], 0), mc(0, [-2.0, -1.0, -3.0, -4.0], 2)],
            "gen_task": gen,
        },
    }
    results, predictions = fold_results(out, bootstrap=0)
    assert results["mc_task"]["metrics"]["acc"]["value"] == 0.5
    assert results["mc_task"]["n"] == 2 and results["mc_task"]["split"] == "test"
    match = results["gen_task"]["metrics"]["exact_match_strict_match"]
    assert match["value"] == pytest.approx(2 / 3) and match["n"] == 3
    assert results["both"]["n"] == 5 and results["both"]["metrics"]["acc"]["ci"][0] < 0.5
    metrics = flat_metrics(results)
    assert set(metrics) == {
        "eval/mc_task/acc",
        "eval/gen_task/exact_match_strict_match",
        "eval/both/acc",
    }
    rows = [p for p in predictions if p["dataset"] == "mc_task"]
    assert [(p["id"], p["gold"], p["predicted"]) for p in rows] == [(0, "C", "B"), (1, "A", "A")]
    assert rows[0]["loglik"] == {"A": -2.0, "B": -1.0, "C": -3.0, "D": -4.0}
    assert [p["response"] for p in predictions if p["dataset"] == "gen_task"] == [
        ["4"], ["5"], ["4"]
    ]  # fmt: skip
    summary = summary_markdown(results)
    assert "| gen_task | validation | lm_eval | 3 | exact_match_strict_match | 0.667 |" in summary
    table = results_table({"stages": [{"name": "medqa", "metrics": metrics}]})
    assert table == {"medqa": {"mc_task": 0.5, "both": 0.5}}  # headline: acc


def _predictions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_lm_eval_backend_equals_the_builtin_scorer_on_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same 24 MMLU-format rows, same tiny model: the built-in mmlu_medical evaluation and
    lm-eval's MMLU template agree on accuracy and on every question's prediction; the
    lm-eval results land in results.json, summary.md, metrics and the manifest."""
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    from medalign.run import run

    monkeypatch.chdir(REPO)
    ours = run(
        compose("stage=eval", "logger=none", "eval.datasets=[mmlu_medical]", "eval.bootstrap=50"),
        tmp_path / "builtin",
    )
    theirs = run(
        compose(*_lm_eval(f"eval.lm_eval.tasks=[{GROUP}]", "eval.bootstrap=50")),
        tmp_path / "lm_eval",
    )
    assert theirs[f"eval/{GROUP}/acc"] == pytest.approx(ours["eval/mmlu_medical/acc"], abs=1e-9)
    for subject in SUBJECTS:
        assert f"eval/medalign_example_mmlu_{subject}/acc" in theirs
        assert f"eval/medalign_example_mmlu_{subject}/acc_norm" in theirs
    overall_norm = sum(theirs[f"eval/medalign_example_mmlu_{s}/acc_norm"] for s in SUBJECTS) / 6
    assert overall_norm == pytest.approx(ours["eval/mmlu_medical/acc_norm"], abs=1e-9)

    builtin = _predictions(tmp_path / "builtin" / "eval" / "predictions.jsonl")
    lm = _predictions(tmp_path / "lm_eval" / "eval" / "predictions.jsonl")
    assert len(builtin) == len(lm) == 24
    by_subject = {
        s: [p for p in builtin if p["id"].startswith(f"{s}:")] for s in SUBJECTS
    }  # the built-in rows, in file order per subject
    for subject in SUBJECTS:
        rows = [p for p in lm if p["dataset"] == f"medalign_example_mmlu_{subject}"]
        assert [p["id"] for p in rows] == list(range(len(by_subject[subject])))
        for mine, other in zip(by_subject[subject], rows, strict=True):
            assert (mine["gold"], mine["predicted"]) == (other["gold"], other["predicted"])
            for letter in "ABCD":
                assert mine["loglik"][letter] == pytest.approx(other["loglik"][letter], abs=1e-4)

    results = json.loads((tmp_path / "lm_eval" / "eval" / "results.json").read_text())
    assert results[GROUP]["n"] == 24 and results[GROUP]["mode"] == "lm_eval"
    anatomy = results["medalign_example_mmlu_anatomy"]
    assert anatomy["n"] == 4 and anatomy["split"] == "test" and "lm-eval" in anatomy["source"]
    summary = (tmp_path / "lm_eval" / "eval" / "summary.md").read_text()
    assert f"| {GROUP} |  | lm_eval | 24 | acc |" in summary
    stage = json.loads((tmp_path / "lm_eval" / "manifest.json").read_text())["stages"][0]
    assert stage["metrics"] == theirs and stage["status"] == "done"


@pytest.mark.slow
def test_lm_eval_on_a_runs_adapter_equals_the_builtin_scorer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init_from=<run>: lm-eval builds base + adapter itself (pretrained=, peft=) and
    scores what the built-in scorer scores on the same run's model."""
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (.[lm_eval])")
    from medalign.run import run
    from tests.run_fixtures import make_curriculum

    monkeypatch.chdir(REPO)
    curriculum = make_curriculum(tmp_path / "curriculum", wandb=False)
    init = f"init_from={curriculum}:medqa"
    ours = run(
        compose("stage=eval", "logger=none", init, "eval.datasets=[mmlu_medical]"),
        tmp_path / "builtin",
    )
    task = "medalign_example_mmlu_clinical_knowledge"
    theirs = run(compose(*_lm_eval(init, f"eval.lm_eval.tasks=[{GROUP}]")), tmp_path / "lm")
    assert theirs[f"eval/{GROUP}/acc"] == pytest.approx(ours["eval/mmlu_medical/acc"], abs=1e-9)
    stage = json.loads((tmp_path / "lm" / "manifest.json").read_text())["stages"][0]
    assert stage["adapter"] == str(curriculum / "2-medqa" / "adapter"), stage["adapter"]
    base = run(compose(*_lm_eval(f"eval.lm_eval.tasks=[{task}]")), tmp_path / "base")
    lm = _predictions(tmp_path / "lm" / "eval" / "predictions.jsonl")
    plain = _predictions(tmp_path / "base" / "eval" / "predictions.jsonl")
    adapted = [p["loglik"] for p in lm if p["dataset"] == task]
    assert adapted != [p["loglik"] for p in plain]  # the adapter is really applied
    assert f"eval/{task}/acc" in base
