"""The verl hand-off (stage=rl rl.engine=verl): data schema, reward module, command.

The command's overrides are checked against verl's own trainer config, read from the
verl wheel (`pip download --no-deps verl`, no dependencies installed) or an installed
verl; skipped with the reason when neither is reachable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import compose

COLUMNS = {"data_source", "prompt", "ability", "reward_model", "extra_info"}


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from medalign.models.init_from import resolve_init_from
    from medalign.rl_engines.verl import write_verl_job

    merged = tmp_path_factory.mktemp("sft_export")  # a merged SFT export: config.json
    (merged / "config.json").write_text("{}")
    cfg = validate(
        compose("stage=rl", "rl.engine=verl", "rl=grpo", f"init_from={merged}", "logger=none")
    )
    run_dir = tmp_path_factory.mktemp("verl_run")
    summary = write_verl_job(cfg, run_dir, resolve_init_from(cfg.init_from))
    return run_dir / "verl", summary


def test_parquet_has_verls_columns_and_types(job: tuple[Path, dict]) -> None:
    from datasets import Dataset

    out, summary = job
    for split, rows in (("train", summary["verl/train_rows"]), ("val", summary["verl/val_rows"])):
        data = Dataset.from_parquet(str(out / f"{split}.parquet"))
        assert set(data.column_names) == COLUMNS
        assert len(data) == rows > 0
        features = data.features
        assert features["data_source"].dtype == "string"
        assert features["ability"].dtype == "string"
        message = features["prompt"].feature  # a list of chat messages
        assert {k: v.dtype for k, v in message.items()} == {"role": "string", "content": "string"}
        assert {k: v.dtype for k, v in features["reward_model"].items()} == {
            "style": "string",
            "ground_truth": "string",
        }
        assert {"split", "index"} < set(features["extra_info"])  # + the reward columns
        row = data[0]
        assert row["reward_model"]["style"] == "rule"
        assert row["prompt"][0]["role"] == "user" and row["prompt"][0]["content"]
        assert row["data_source"].startswith("medalign/")
        assert row["extra_info"]["split"] == split


def test_reward_module_scores_like_medalign(job: tuple[Path, dict]) -> None:
    """Hand-written completions for real rows, scored in a fresh process by the
    generated module and here by medalign's functions with the same columns."""
    from datasets import Dataset

    from medalign.rewards.functions import correctness, format_reward, length_reward

    out, _ = job
    rows = Dataset.from_parquet(str(out / "train.parquet")).to_list()
    rows = [r for r in rows if '"choices"' in r["extra_info"].get("reference", "")][:3]
    assert rows, "no multiple-choice prompts in the job"
    cases = []
    for row in rows:
        truth = row["reward_model"]["ground_truth"]
        for text in (f"Reasoning first.\nFinal answer: {truth}", "Final answer: Q", "hmm " * 300):
            cases.append((text, truth, row["extra_info"]))
    got = _score_in_a_fresh_process(out / "medalign_reward.py", cases)
    cfg = validate(compose())
    weights, target = cfg.reward.weights, cfg.reward.length_target
    for (text, _, info), scores in zip(cases, got, strict=True):
        columns = {k: [v] for k, v in info.items() if k not in ("split", "index")}
        expected = {
            "correctness": correctness([text], **columns)[0],
            "format": format_reward([text], **columns)[0],
            "length": length_reward(target)([text], **columns)[0],
        }
        assert {k: scores[k] for k in expected} == expected
        assert scores["score"] == pytest.approx(sum(weights[k] * v for k, v in expected.items()))
    assert [s["correctness"] for s in got[:2]] == [1.0, 0.0]  # right letter, wrong letter
    assert got[2]["length"] < 0 and got[2]["format"] == 0.0  # rambling, no answer line


CUSTOM_REWARD = """
def words(completions, prompts, task, reference, **_):
    # TRL's call in medalign's GRPO: chat prompts and completions, the dataset columns
    assert prompts[0][-1]["role"] == "user" and task[0] and reference[0]
    return [float(len(c[-1]["content"].split())) for c in completions]
"""


def _score_in_a_fresh_process(module: Path, cases: list) -> list[dict]:
    """compute_score of the generated module for each (text, truth, extra_info), run as
    verl would: another process, another working directory, no PYTHONPATH."""
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('r', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "cases = json.load(open(sys.argv[2]))\n"
        "print(json.dumps([mod.compute_score('medalign/x', t, g, i) for t, g, i in cases]))\n"
    )
    (module.parent / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(module), str(module.parent / "cases.json")],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_reward_module_calls_a_dotted_reward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reward given as package.module.function reaches verl: the written module imports
    it and adds it, with its weight, to the score (not only the built-in rule rewards)."""
    from datasets import Dataset

    from medalign.models.init_from import resolve_init_from
    from medalign.rl_engines.verl import write_verl_job

    package = tmp_path / "src" / "verl_custom_rewards"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "brevity.py").write_text(CUSTOM_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    merged = tmp_path / "sft_export"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    weights = "{correctness:1.0,format:0.0,length:0.0,verl_custom_rewards.brevity.words:0.5}"
    cfg = validate(
        compose(
            "stage=rl", "rl.engine=verl", f"init_from={merged}", "logger=none",
            f"+reward.weights={weights}",
        )
    )  # fmt: skip
    write_verl_job(cfg, tmp_path / "run", resolve_init_from(cfg.init_from))
    out = tmp_path / "run" / "verl"
    row = Dataset.from_parquet(str(out / "train.parquet"))[0]
    truth = row["reward_model"]["ground_truth"]
    texts = [f"Short reasoning.\nFinal answer: {truth}", "one two three"]
    got = _score_in_a_fresh_process(
        out / "medalign_reward.py", [(t, truth, row["extra_info"]) for t in texts]
    )
    assert [s["words"] for s in got] == [float(len(t.split())) for t in texts]
    for scores in got:
        assert scores["score"] == pytest.approx(scores["correctness"] + 0.5 * scores["words"])


def test_verl_refuses_a_dotted_reward_it_cannot_import(tmp_path: Path) -> None:
    from medalign.rl_engines.verl import reward_module

    cfg = validate(compose("stage=rl", "rl.engine=verl", "+reward.weights={no_such_pkg.fn:1.0}"))
    with pytest.raises(MedalignError, match="cannot import reward_fn 'no_such_pkg.fn'"):
        reward_module(cfg)


def test_verl_refuses_algorithms_it_lacks() -> None:
    from medalign.checks import check_components

    with pytest.raises(MedalignError, match="verl has no 'dpo'"):
        check_components(validate(compose("stage=rl", "rl=dpo", "rl.engine=verl")))
    check_components(validate(compose("stage=rl", "rl=ppo", "rl.engine=verl")))  # to verl
    with pytest.raises(MedalignError, match="PPOTrainer is not in this TRL"):
        check_components(validate(compose("stage=rl", "rl=ppo")))


def test_verl_adapter_is_the_configured_one(tmp_path: Path) -> None:
    """lora.r, lora.alpha and lora.target_modules reach verl's adapter (a list too)."""
    from medalign.rl_engines.verl import verl_command

    cfg = validate(
        compose("stage=rl", "rl.engine=verl", "lora.r=16", "lora.target_modules=[q_proj,v_proj]")
    )
    command = dict(c.split("=", 1) for c in verl_command(cfg, tmp_path, "/m")[3:])
    assert command["actor_rollout_ref.model.lora_rank"] == "16"
    assert command["actor_rollout_ref.model.target_modules"] == "[q_proj,v_proj]"


@pytest.fixture(scope="module")
def verl_config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _verl_trainer_yaml(tmp_path_factory.mktemp("verl_wheel"))


def _verl_trainer_yaml(tmp: Path) -> dict:
    """verl's resolved trainer config (_generated_ppo_trainer.yaml, the flattened form of
    ppo_trainer.yaml) from an installed verl or the wheel on the package index."""
    import yaml

    name = "verl/trainer/config/_generated_ppo_trainer.yaml"
    try:
        import verl  # noqa: F401

        return yaml.safe_load((Path(verl.__file__).parent.parent / name).read_text())
    except ImportError:
        pass
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "verl", "-d", str(tmp), "-q"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    wheels = list(tmp.glob("verl-*.whl"))
    if proc.returncode or not wheels:
        pytest.skip(f"verl wheel not reachable on the package index: {proc.stderr[-300:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        return yaml.safe_load(wheel.read(name))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "grpo", "rloo"])
def test_every_override_is_a_verl_config_key(
    algorithm: str, verl_config: dict, tmp_path: Path
) -> None:
    from medalign.rl_engines.verl import verl_command

    config = verl_config
    cfg = validate(compose("stage=rl", f"rl={algorithm}", "rl.engine=verl"))
    command = verl_command(cfg, tmp_path, "/models/sft")
    assert command[:3] == ["python3", "-m", "verl.trainer.main_ppo"]
    for override in command[3:]:
        node = config
        key = override.split("=", 1)[0]
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key}: not in verl's config"
            node = node[part]
