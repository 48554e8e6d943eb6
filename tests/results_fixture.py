"""A fixed finished curriculum for the results tables (results.md, report.html): scores
with intervals, a forgotten dataset, a reward model, RL rewards and a validation loss.
Used to check that moving the reporting out of medalign/curriculum.py changed no byte
(tests/unit/test_results_report.py against tests/assets/results_expected/)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from tests.run_fixtures import write_eval_run


def _acc(n: int, rate: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < rate) for _ in range(n)]


def finished_curriculum(run: Path) -> dict:
    """Write the curriculum under `run` (manifest.json with its results) and return the
    manifest: before -> pubmedqa -> medqa (forgets pubmedqa) -> reward -> rl."""
    evals = {
        "before": {"pubmedqa": _acc(200, 0.3, 1), "medqa": _acc(200, 0.3, 3)},
        "pubmedqa": {"pubmedqa": _acc(200, 0.8, 2), "medqa": _acc(200, 0.3, 3)},
        "medqa": {"pubmedqa": _acc(200, 0.3, 1), "medqa": _acc(200, 0.5, 4)},
    }
    stages = []
    for k, (name, values) in enumerate(evals.items()):
        folder = write_eval_run(run / f"{k}-{name}", values)
        metrics = {f"eval/{d}/acc": sum(v) / len(v) for d, v in values.items()}
        stages.append({"name": name, "dir": str(folder), "status": "done", "metrics": metrics})
    stages[2]["validation"] = {
        "losses": [[2, 2.5], [4, 2.25], [6, 2.4]],
        "best_loss": 2.25,
        "best_step": 4,
        "stopped_early": True,
        "kept": "best",
        "rows": 12,
        "source": "dev",
    }
    reward = run / "3-reward"
    reward.mkdir(parents=True)
    stages.append(
        {
            "name": "reward",
            "dir": str(reward),
            "status": "done",
            "metrics": {
                "reward/safety_accuracy": 0.75,
                "reward/safety_heldout_pairs": 40,
                "reward/safety_accuracy_harmful": 0.6,
                "reward/safety_heldout_pairs_harmful": 30,
                "reward/safety_accuracy_calibration": 1.0,
                "reward/safety_heldout_pairs_calibration": 10,
                "reward/helpfulness_accuracy": 0.7,
                "reward/helpfulness_heldout_pairs": 50,
            },
        }
    )
    rl = run / "4-rl"
    metrics = finished_rl_stage(rl)
    stages.append({"name": "rl", "dir": str(rl), "status": "done", "metrics": metrics})
    manifest = {
        "kind": "curriculum",
        "medalign_version": "0.0.0",
        "git_commit": "fixed",
        "handoff": "continue",
        "started": "2026-12-06T00:00:00+0000",
        "overrides": [],
        "data_source": "synthetic world (seed 0, 40 diseases; invented facts, not medicine)",
        "stages": stages,
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def finished_rl_stage(stage_dir: Path) -> dict:
    """An RL stage folder as an older run left it (its reward weights in config.yaml, the
    fifths' means and Welch p without n or intervals); returns its metrics."""
    stage_dir.mkdir(parents=True)
    weights = {"correctness": 1.0, "format": 0.2, "length": 0.1}
    (stage_dir / "config.yaml").write_text(yaml.safe_dump({"reward": {"weights": weights}}))
    metrics = {"rl/logged_steps": 10}
    for name, (first, last) in {"correctness": (0.4, 0.3), "format": (1.0, 0.9)}.items():
        metrics |= {f"reward/{name}_first_fifth": first, f"reward/{name}_last_fifth": last}
    metrics |= {"reward/total_first_fifth": 0.6, "reward/total_last_fifth": 0.48}
    metrics |= {"reward/correctness_fifths_p": 0.0004, "reward/format_fifths_p": 0.21}
    return metrics


def normalized(text: str, run: Path) -> str:
    """`text` with the run's own path replaced, so two folders compare equal."""
    return text.replace(str(run), "<run>")
