"""The verl hand-off (stage=rl rl.engine=verl): data schema, reward module, command,
a job folder that still works when copied elsewhere, sizes from the plan and config.

The command's overrides are checked against verl's own trainer config, read from the
wheel of the verl version the job records (`pip download --no-deps verl==VERL_VERSION`,
no dependencies installed) or an installed verl of that version; skipped with the
reason when neither is reachable.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.errors import MedalignError
from tests.conftest import REPO, compose

COLUMNS = {"data_source", "prompt", "ability", "reward_model", "extra_info"}


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from medalign.models.init_from import resolve_init_from
    from medalign.rl_engines.verl import write_verl_job

    run_dir = tmp_path_factory.mktemp("verl_run")
    merged = run_dir / "sft_export"  # a merged SFT export (config.json) in the run dir
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    cfg = validate(
        compose("stage=rl", "rl.engine=verl", "rl=grpo", f"init_from={merged}", "logger=none")
    )
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


def _score_in_a_fresh_process(
    module: Path, cases: list, env: dict | None = None, flags: tuple = ()
) -> list[dict]:
    """compute_score of the generated module for each (text, truth, extra_info), run as
    verl would: another process, another working directory, no PYTHONPATH; MEDALIGN_ROOT
    as run.sh exports it (this clone) unless `env` says otherwise."""
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('r', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "cases = json.load(open(sys.argv[2]))\n"
        "print(json.dumps([mod.compute_score('medalign/x', t, g, i) for t, g, i in cases]))\n"
    )
    (module.parent / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, *flags, "-c", script, str(module), str(module.parent / "cases.json")],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "MEDALIGN_ROOT": str(REPO), **(env or {})},
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
    command = dict(c.split("=", 1) for c in verl_command(cfg, "/m")[3:])
    assert command["actor_rollout_ref.model.lora_rank"] == "16"
    assert command["actor_rollout_ref.model.target_modules"] == "[q_proj,v_proj]"


@pytest.fixture(scope="module")
def verl_wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where verl's wheel is downloaded once for the module (_verl_file)."""
    return tmp_path_factory.mktemp("verl_wheel")


@pytest.fixture(scope="module")
def verl_config(verl_wheel_dir: Path) -> dict:
    return _verl_trainer_yaml(verl_wheel_dir)


def _verl_trainer_yaml(tmp: Path) -> dict:
    """verl's resolved trainer config (_generated_ppo_trainer.yaml, the flattened form of
    ppo_trainer.yaml) of the version the job records (VERL_VERSION)."""
    import yaml

    return yaml.safe_load(_verl_file(tmp, "verl/trainer/config/_generated_ppo_trainer.yaml"))


def _verl_file(tmp: Path, name: str) -> str:
    """A file of verl VERL_VERSION, from an installed verl of that version or its wheel on
    the package index (skipped when neither is reachable)."""
    from medalign.rl_engines.verl import VERL_VERSION

    try:
        import verl  # noqa: F401

        if verl.__version__ == VERL_VERSION:
            return (Path(verl.__file__).parent.parent / name).read_text()
    except ImportError:
        pass
    wheels = list(tmp.glob("verl-*.whl"))
    if wheels:
        with zipfile.ZipFile(wheels[0]) as wheel:
            return wheel.read(name).decode()
    wanted = f"verl=={VERL_VERSION}"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", wanted, "-d", str(tmp), "-q"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    wheels = list(tmp.glob("verl-*.whl"))
    if proc.returncode or not wheels:
        pytest.skip(f"verl wheel not reachable on the package index: {proc.stderr[-300:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        assert wheel.read("verl/version/version").decode().strip() == VERL_VERSION
        return wheel.read(name).decode()


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["ppo", "grpo", "rloo"])
def test_every_override_is_a_verl_config_key(
    algorithm: str, verl_config: dict, tmp_path: Path
) -> None:
    from medalign.rl_engines.verl import verl_command

    config = verl_config
    cfg = validate(compose("stage=rl", f"rl={algorithm}", "rl.engine=verl"))
    command = verl_command(cfg, "/models/sft")
    assert command[:3] == ["python3", "-m", "verl.trainer.main_ppo"]
    for override in command[3:]:
        node = config
        key = override.split("=", 1)[0]
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key}: not in verl's config"
            node = node[part]


def test_the_custom_reward_is_under_reward_where_verl_0_9_reads_it() -> None:
    """verl 0.9's main_ppo reads reward.custom_reward_function (verl PR #5255). The old
    top-level custom_reward_function is still a key of its config, so Hydra accepts an
    override of it, but main_ppo never moves it across: the reward would silently be
    verl's default instead of medalign's."""
    overrides = _overrides()
    assert overrides["reward.custom_reward_function.path"] == "${JOB_DIR}/medalign_reward.py"
    assert overrides["reward.custom_reward_function.name"] == "compute_score"
    assert not [key for key in overrides if key.startswith("custom_reward_function.")]


@pytest.mark.slow
def test_verl_reads_the_reward_key_medalign_writes(verl_config: dict, verl_wheel_dir: Path):
    """The fact above, in verl VERL_VERSION's own source: its reward loader reads
    config.reward.custom_reward_function, and main_ppo does not migrate the old key
    (only the fully-async entry point calls migrate_legacy_reward_impl)."""
    loader = _verl_file(verl_wheel_dir, "verl/trainer/ppo/reward.py")
    assert 'config.reward.get("custom_reward_function")' in loader
    main = _verl_file(verl_wheel_dir, "verl/trainer/main_ppo.py")
    assert "migrate_legacy_reward_impl" not in main
    assert verl_config["reward"]["custom_reward_function"]["name"] == "compute_score"


STUB_PYTHON = """#!/usr/bin/env bash
# stands in for verl's Python: check_env.py reports a verl version; records the verl command
if [[ "$1" == *check_env.py ]]; then echo 0.0.1-stub; exit 0; fi
pwd > "$STUB_OUT.cwd"
printf '%s\\n' "$@" > "$STUB_OUT"
"""


def _run_stubbed(script: Path, tmp: Path, **env: str) -> tuple[dict[str, str], str, str]:
    """Run `script` (run.sh) with a stub python3 first on PATH: the verl overrides it
    was called with, its working directory and run.sh's stderr."""
    stub = tmp / "bin"
    stub.mkdir(exist_ok=True)
    (stub / "python3").write_text(STUB_PYTHON)
    (stub / "python3").chmod(0o755)
    record = tmp / "argv.txt"
    proc = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": f"{stub}:/usr/bin:/bin", "STUB_OUT": str(record), **env},
    )
    assert proc.returncode == 0, proc.stderr
    argv = record.read_text().splitlines()
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    overrides = dict(a.split("=", 1) for a in argv[2:])
    return overrides, (tmp / "argv.txt.cwd").read_text().strip(), proc.stderr


def test_a_copied_job_names_no_path_of_the_original(job: tuple[Path, dict], tmp_path: Path):
    """Copy the run folder elsewhere: no file of its job names the original run dir or
    this clone, and run.sh hands verl the copy's own files and model."""
    out, _ = job
    run_dir = out.parent
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, copy)
    forbidden = {str(run_dir), str(run_dir.resolve()), str(REPO), str(REPO.resolve())}
    for name in ("command.txt", "run.sh", "slurm.sh", "medalign_reward.py", "job.json"):
        text = (copy / "verl" / name).read_text()
        for path in forbidden:
            assert path not in text, f"{name} names {path}"
    overrides, cwd, stderr = _run_stubbed(copy / "verl" / "run.sh", tmp_path)
    job_dir = (copy / "verl").resolve()
    assert cwd == str(job_dir)
    for key in ("data.train_files", "data.val_files", "reward.custom_reward_function.path"):
        assert Path(overrides[key]).resolve().parent == job_dir and Path(overrides[key]).is_file()
    assert Path(overrides["actor_rollout_ref.model.path"]).resolve() == (copy / "sft_export")
    assert Path(overrides["trainer.default_local_dir"]).resolve() == job_dir / "checkpoints"
    assert (overrides["trainer.nnodes"], overrides["trainer.n_gpus_per_node"]) == ("1", "1")
    # the variables at the top of run.sh, from the environment
    moved, _, _ = _run_stubbed(
        copy / "verl" / "run.sh", tmp_path, MODEL_PATH="/models/x", NNODES="3", GPUS_PER_NODE="4"
    )
    assert moved["actor_rollout_ref.model.path"] == "/models/x"
    assert (moved["trainer.nnodes"], moved["trainer.n_gpus_per_node"]) == ("3", "4")
    assert "verl 0.0.1-stub is installed" in stderr and "verl 0.9.1" in stderr


def _medalign_origin(module: Path, env: dict) -> Path:
    """The medalign package the generated module imported, in a fresh process."""
    script = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); print(sys.modules['medalign'].__file__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(module)],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", **env},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def test_the_copied_reward_module_scores_from_its_new_place(
    job: tuple[Path, dict], tmp_path: Path
) -> None:
    from datasets import Dataset

    out, _ = job
    shutil.copytree(out, tmp_path / "verl")
    module = tmp_path / "verl" / "medalign_reward.py"
    row = Dataset.from_parquet(str(tmp_path / "verl" / "train.parquet"))[0]
    truth = row["reward_model"]["ground_truth"]
    case = [(f"Reasoning.\nFinal answer: {truth}", truth, row["extra_info"])]
    assert _score_in_a_fresh_process(module, case)[0]["correctness"] == 1.0
    origin = _medalign_origin(module, {"MEDALIGN_ROOT": str(REPO)})
    assert origin.is_relative_to(REPO)  # this clone, as MEDALIGN_ROOT says
    with pytest.raises(AssertionError, match="set MEDALIGN_ROOT to a medalign clone"):
        # no clone given and (-S: no site-packages) no medalign installed: one clear line
        _score_in_a_fresh_process(module, case, env={"MEDALIGN_ROOT": ""}, flags=("-S",))


def test_a_job_inside_the_clone_finds_it_relative_to_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written under the clone's runs/, the job reaches medalign by a relative path (both
    run.sh's MEDALIGN_ROOT default and medalign_reward.py with no MEDALIGN_ROOT set)."""
    from medalign.rl_engines import verl
    from medalign.rl_engines.verl_scripts import clone_default

    clone = tmp_path / "clone"
    out = clone / "runs" / "d" / "t" / "verl"
    out.mkdir(parents=True)
    (clone / "medalign").symlink_to(REPO / "medalign")
    assert clone_default(out, clone) == "${JOB_DIR}/../../../.."
    assert clone_default(tmp_path / "outside" / "verl", clone) == ""
    monkeypatch.setattr(verl, "REPO_ROOT", clone.resolve())
    (out / "medalign_reward.py").write_text(verl.reward_module(validate(compose()), out))
    assert str(clone) not in (out / "medalign_reward.py").read_text()
    # MEDALIGN_ROOT unset: CLONE, relative to the module's own folder
    assert _medalign_origin(out / "medalign_reward.py", {}).is_relative_to(clone)


def _overrides(*extra: str) -> dict[str, str]:
    from medalign.rl_engines.verl import verl_command

    cfg = validate(compose("stage=rl", "rl.engine=verl", "rl=grpo", *extra))
    return dict(c.split("=", 1) for c in verl_command(cfg)[3:])


def test_sizes_follow_the_plan_and_the_runs_config() -> None:
    tiny = _overrides()
    big = _overrides(
        "plan.world_size=16", "plan.gpu=h100_sxm", "rl.max_completion_length=512",
        "rl.num_generations=8", "trainer.per_device_train_batch_size=16",
        "trainer.max_steps=300",
    )  # fmt: skip
    assert tiny["data.train_batch_size"] == "2"  # 8 completions / 4 per prompt
    assert big["data.train_batch_size"] == str(16 * 16 // 8)
    assert big["actor_rollout_ref.actor.ppo_mini_batch_size"] == big["data.train_batch_size"]
    assert (tiny["data.max_response_length"], big["data.max_response_length"]) == ("64", "512")
    assert big["trainer.total_training_steps"] == "300"
    assert big["actor_rollout_ref.rollout.n"] == "8"
    accum = _overrides("trainer.gradient_accumulation_steps=4")
    assert accum["data.train_batch_size"] == "8"  # one update per rollout, as TRL steps


def test_the_planner_sizes_micro_batch_and_rollout_memory() -> None:
    """An 8B model, fully trained on one 40 GB card, gets what the planner finds: micro
    batch 1, a small vLLM share, a note that it does not fit; 16 H100s get more."""
    from medalign.rl_engines.verl_sizing import verl_sizes

    full = ("stage=rl", "rl.engine=verl", "model=llama3_8b", "lora=none")
    crowded = verl_sizes(validate(compose(*full, "plan.gpu=a100_40gb")))
    roomy = verl_sizes(validate(compose(*full, "plan.gpu=h100_sxm", "plan.world_size=16")))
    assert crowded.micro < roomy.micro
    assert crowded.gpu_memory_utilization < roomy.gpu_memory_utilization
    assert any("no micro-batch that fits" in n for n in crowded.notes)
    assert not any("no micro-batch that fits" in n for n in roomy.notes)
    assert any("toy-sized" in n and "rl.max_completion_length" in n for n in roomy.notes)


@pytest.mark.parametrize(
    ("world", "per_node", "nodes", "gpus"),
    [(1, 8, 1, 1), (4, 8, 1, 4), (16, 8, 2, 8), (16, 4, 4, 4)],
)
def test_slurm_layout_follows_world_size(
    world: int, per_node: int, nodes: int, gpus: int, tmp_path: Path
):
    from medalign.rl_engines.verl import VERL_VERSION, verl_command
    from medalign.rl_engines.verl_scripts import write_scripts
    from medalign.rl_engines.verl_sizing import verl_sizes

    cfg = validate(
        compose(
            "stage=rl",
            "rl.engine=verl",
            f"plan.world_size={world}",
            f"plan.gpus_per_node={per_node}",
        )
    )
    sizes = verl_sizes(cfg)
    variables = {"MODEL_PATH": "m", "MEDALIGN_ROOT": ""}
    write_scripts(tmp_path, verl_command(cfg, sizes=sizes), sizes, variables, VERL_VERSION, "x")
    slurm = (tmp_path / "slurm.sh").read_text()
    assert re.findall(r"^#SBATCH --nodes=(\d+)$", slurm, re.M) == [str(nodes)]
    assert re.findall(r"^#SBATCH --gpus-per-node=(\d+)$", slurm, re.M) == [str(gpus)]
    assert 'NNODES="$SLURM_JOB_NUM_NODES"' in slurm and "$SLURM_GPUS_ON_NODE" in slurm
    run = (tmp_path / "run.sh").read_text()
    assert f'NNODES="${{NNODES:-{nodes}}}"' in run
    assert f'GPUS_PER_NODE="${{GPUS_PER_NODE:-{gpus}}}"' in run


def test_verl_refuses_layouts_and_groups_it_cannot_split() -> None:
    from medalign.rl_engines.verl_sizing import verl_sizes

    with pytest.raises(MedalignError, match="plan.world_size=12: .* multiple of 8"):
        verl_sizes(validate(compose("stage=rl", "rl.engine=verl", "plan.world_size=12")))
    four = ("stage=rl", "rl.engine=verl", "plan.world_size=6", "plan.gpus_per_node=4")
    with pytest.raises(MedalignError, match="plan.world_size=6: .* 4-GPU nodes"):
        verl_sizes(validate(compose(*four)))
    with pytest.raises(MedalignError, match="rl.num_generations=3: .* must be a multiple"):
        verl_sizes(validate(compose("stage=rl", "rl.engine=verl", "rl.num_generations=3")))


def test_the_job_records_the_verl_version_it_was_checked_against(job: tuple[Path, dict]):
    from medalign.rl_engines.verl import VERL_VERSION

    out, _ = job
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERL_VERSION)
    assert json.loads((out / "job.json").read_text())["verl_version"] == VERL_VERSION
    assert f"\nVERL_VERSION={VERL_VERSION}\n" in (out / "run.sh").read_text()
    assert f"verl {VERL_VERSION}" in (out / "command.txt").read_text()


def test_the_job_carries_its_environment(job: tuple[Path, dict]) -> None:
    """verl's environment travels with the job (rl_engines/verl_env.py; its contents are
    tested in tests/unit/test_verl_env.py) and run.sh checks it first."""
    out, _ = job
    for name in ("requirements.txt", "check_env.py", "README.md"):
        assert (out / name).is_file(), name
        assert name in json.loads((out / "job.json").read_text())["files"]
    run = (out / "run.sh").read_text()
    assert run.index('"$JOB_DIR/check_env.py"') < run.index("exec ")
