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
from tests.conftest import REPO, compose

TASKS = REPO / "tests" / "assets" / "lm_eval_tasks"
GROUP = "medalign_example_mmlu_medical"
SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)


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


def test_the_builtin_backend_needs_no_lm_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    cfg = validate(compose("stage=eval", "eval.lm_eval.tasks=[anything]"))
    assert cfg.eval.backend == "builtin"
    check_components(cfg)  # nothing asks for lm-eval


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
