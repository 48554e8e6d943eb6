"""Kill points in the reward and RL stages of a curriculum (issue 13's fault injection).

A curriculum pubmedqa -> reward -> rl on the tiny model (debug=fast, checkpoints every
2 steps) is SIGKILLed inside the reward stage (while the first reward model trains, and
while the second trains after the first was saved) and inside the RL stage (during GRPO
training, and in its evaluation after the adapter was saved), then resumed with
`resume=<dir>`. Each resume must finish with the result of an uninterrupted run (reward
models, RL adapter, metrics, results table; the tolerances of the SFT kill test), leave
the stages that had finished byte-identical, and keep what the killed stage left
(`<k>-<name>.interrupted-<time>/`). The SFT kill points are in test_curriculum.py and
test_resume_points.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import finish_cli, start_cli, tree_digest

CURRICULUM = [
    "experiment=curriculum",
    "debug=fast",
    "curriculum.order=[pubmedqa,reward,rl]",
    "curriculum.eval_before=false",
    "eval.datasets=[pubmedqa]",
    "eval.bootstrap=0",
    "trainer.save_steps=2",
]
STATE = "trainer_state.json"  # the last file of a complete checkpoint
KILL_POINTS = {  # name: (the file whose appearance triggers the kill, stages done before)
    "reward_first_model": (f"1-reward/checkpoints_helpfulness/checkpoint-2/{STATE}", 1),
    "reward_second_model": (f"1-reward/checkpoints_safety/checkpoint-2/{STATE}", 1),
    "rl_training": (f"2-rl/checkpoints/checkpoint-2/{STATE}", 2),
    "rl_evaluation": ("2-rl/adapter/adapter_model.safetensors", 2),  # adapter saved
}
STAGES = ["0-pubmedqa", "1-reward", "2-rl"]
LOCK = (".medalign.lock",)  # held by the running curriculum: not part of its result


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, f"no weights in {folder}"
    return {k: v for f in files for k, v in load_file(str(f)).items()}


def _assert_same_weights(ours: Path, theirs: Path) -> None:
    import torch

    mine, reference = _weights(ours), _weights(theirs)
    assert mine.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(mine[name], tensor, atol=1e-4, rtol=1e-3, msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    finish_cli(start_cli(*CURRICULUM, f"hydra.run.dir={run}"))
    return run


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_kill_in_the_reward_or_rl_stage_resumes_to_the_uninterrupted_result(
    reference: Path, tmp_path: Path, point: str
) -> None:
    trigger, done = KILL_POINTS[point]
    finished = STAGES[:done]
    before_ref = tree_digest(reference, skip=LOCK)
    run = tmp_path / "run"
    proc = start_cli(*CURRICULUM, f"hydra.run.dir={run}")
    ready = run / trigger
    deadline = time.time() + 500
    while not ready.is_file():
        assert proc.poll() is None, f"the run ended before {trigger}: {proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"never reached {trigger}"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_stage = trigger.split("/")[0]
    manifest = json.loads((run / "manifest.json").read_text())
    status = {Path(s["dir"]).name: s["status"] for s in manifest["stages"]}
    assert status == {**dict.fromkeys(finished, "done"), killed_stage: "running"}
    kept = {name: tree_digest(run / name, skip=LOCK) for name in finished}

    out = finish_cli(start_cli("experiment=curriculum", f"resume={run}"))
    assert "resuming the curriculum" in out
    manifest = json.loads((run / "manifest.json").read_text())
    ref_manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["status"] == "done"
    assert [s["status"] for s in manifest["stages"]] == ["done"] * 3
    # the stages that had finished were not touched; what the killed one left is kept
    assert {name: tree_digest(run / name, skip=LOCK) for name in finished} == kept
    assert len(list(run.glob(f"{killed_stage}.interrupted-*"))) == 1

    for objective in ("helpfulness", "safety"):
        _assert_same_weights(
            run / "1-reward" / f"reward_{objective}",
            reference / "1-reward" / f"reward_{objective}",
        )
    _assert_same_weights(run / "2-rl" / "adapter", reference / "2-rl" / "adapter")
    ours = {s["name"]: s["metrics"] for s in manifest["stages"]}
    theirs = {s["name"]: s["metrics"] for s in ref_manifest["stages"]}
    for stage in ("reward", "rl"):
        assert ours[stage].keys() == theirs[stage].keys()
        for key, value in theirs[stage].items():
            if key.endswith(("_s", "runtime")):  # wall-clock times
                continue
            assert ours[stage][key] == pytest.approx(value, abs=1e-3, nan_ok=True), key
    assert manifest["results"] == ref_manifest["results"]
    assert (run / "results.md").read_text() == (reference / "results.md").read_text()
    assert tree_digest(reference, skip=LOCK) == before_ref  # the other curriculum was never touched
