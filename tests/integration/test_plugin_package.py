"""A plugin package outside medalign (tests/assets/plugin: a module, its conf/ and the
entry points `pip install` would write) registers a Task, a dataset YAML and a reward
function, and medalign uses them by name, with no line of medalign changed (issue #23).
Each check runs in a fresh interpreter with the package on sys.path, as it would be once
installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "tests" / "assets" / "plugin"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(PLUGIN)]),
            "ZORB_CLAIMS": str(PLUGIN / "zorb_claims"),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_plugins_task_dataset_and_reward_are_found_by_name() -> None:
    probe = (
        "from medalign.registry import get, names\n"
        "from medalign.compose import compose, dataset_names\n"
        "from medalign.config import validate\n"
        "from medalign.rewards.functions import build_reward_functions\n"
        "fns, w = build_reward_functions({'zorb_brevity': 1.0}, {}, 10)\n"
        "cfg = validate(compose(['stage=sft', 'dataset=zorb_claims']))\n"
        "print(json.dumps([names('task'), dataset_names(), cfg.dataset.format]))\n"
        "print(json.dumps(fns[0](['yes', 'a b c d e f g'])))\n"
    )
    done = _run("-c", "import json\n" + probe)
    assert done.returncode == 0, done.stderr[-3000:]
    (tasks, datasets, fmt), scores = (json.loads(line) for line in done.stdout.splitlines())
    assert "zorb_claims" in tasks and "zorb_claims" in datasets and fmt == "zorb_claims"
    assert scores == [1.0, 0.0]  # the plugin's reward, through medalign's reward builder


@pytest.mark.slow  # trains and evaluates; a YAML dataset does the same in make test
def test_the_plugins_dataset_trains_and_is_evaluated(tmp_path: Path) -> None:
    out = tmp_path / "run"
    evaluated = ("eval.after_train=true", "eval.datasets=[zorb_claims]")
    done = _run(
        "-m",
        "medalign",
        "debug=fast",
        "stage=sft",
        "dataset=zorb_claims",
        *evaluated,
        f"hydra.run.dir={out}",
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    stage = json.loads((out / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done" and "eval/zorb_claims/acc" in stage["metrics"]
    predictions = [json.loads(x) for x in (out / "eval" / "predictions.jsonl").open()]
    assert [p["gold"] for p in predictions] == [" true", " false"]  # the plugin's test split


def test_the_plugin_layout_is_recognized_and_other_files_refused(tmp_path: Path) -> None:
    """The plugin's Task declares its layout: a MedQA file given to it is refused, and its
    own file given to medqa is named as a zorb_claims file."""
    probe = (
        "import sys\n"
        "from medalign.compose import compose\n"
        "from medalign.config import validate\n"
        "from medalign.data.loading import load_records\n"
        "from medalign.errors import MedalignError\n"
        "cfg = validate(compose(['stage=sft', 'dataset=medqa', 'dataset.path=' + sys.argv[1]]))\n"
        "try:\n"
        "    load_records(cfg.dataset)\n"
        "except MedalignError as exc:\n"
        "    print(exc)\n"
    )
    done = _run("-c", probe, str(PLUGIN / "zorb_claims" / "train.jsonl"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "this is a zorb_claims file, not medqa" in done.stdout


def test_a_broken_plugin_is_one_line_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "site"
    (broken / "broken_plugin-0.1.dist-info").mkdir(parents=True)
    (broken / "broken_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n"
    )
    (broken / "broken_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[medalign.plugins]\nbroken = broken_plugin_missing_module\n"
    )
    done = _run(
        "-m",
        "medalign",
        "stage=sft",
        "--cfg",
        "job",
        env={"PYTHONPATH": os.pathsep.join([str(REPO), str(broken)])},
    )
    assert done.returncode != 0
    assert "plugin 'broken' (broken_plugin_missing_module, from the package broken-plugin)" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # GRPO steps (about 35 s)
def test_rl_optimizes_the_plugins_reward_on_the_plugins_prompts(tmp_path: Path) -> None:
    out = tmp_path / "rl"
    plugin = ("rl.datasets=[zorb_claims]", "+reward.weights.zorb_brevity=0.5")
    done = _run("-m", "medalign", "debug=fast", "stage=rl", *plugin, f"hydra.run.dir={out}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "rewards/zorb_brevity/mean" in (out / "medalign.log").read_text() + done.stdout
