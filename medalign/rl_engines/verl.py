"""RL at scale on verl: `stage=rl rl.engine=verl` writes a ready-to-run verl job.

    python -m medalign stage=rl rl.engine=verl rl.algorithm=ppo init_from=runs/<date>/<time>_medqa
    bash runs/<date>/<time>-rl/verl/run.sh           # where verl is installed
    sbatch runs/<date>/<time>-rl/verl/slurm.sh       # a Ray cluster on SLURM

Why: TRL >= 1.13 has no PPO, and one process cannot roll out and train a 7-8B policy at
scale. verl (Ray, FSDP, vLLM/SGLang rollouts) is built for that; medalign hands it the
same prompts, the same rewards and its settings, and does not reimplement it. The job
directory holds:

- train.parquet / val.parquet in verl's data schema: data_source, prompt (chat list),
  ability, reward_model {style: rule, ground_truth}, extra_info (the columns medalign's
  reward functions read: gold, choices, golds, no_answer; split, index);
- medalign_reward.py: verl's custom reward function `compute_score(data_source,
  solution_str, ground_truth, extra_info=None)`: the reward.weights-weighted sum of
  medalign's rule rewards (correctness, format, length) and of every reward given by its
  dotted path (`'+reward.weights={my_pkg.rewards.brevity: 0.5}'`), imported and called
  as TRL calls it (chat prompts and completions, the dataset columns); one that does not
  import, here or where verl runs, stops with one line;
- command.txt / run.sh: `python3 -m verl.trainer.main_ppo` with Hydra overrides, each a
  key of verl VERL_VERSION's trainer config (the tests check them against its wheel);
  the adapter is `lora.r`, `lora.alpha`, `lora.target_modules` (verl's LoRA has no
  dropout; a variant it cannot build, such as lora=dora, is refused at start-up);
- slurm.sh: a Ray head + workers on the allocated nodes, then run.sh;
- requirements.txt, check_env.py, README.md: verl's own environment (verl_env.py), which
  run.sh checks first;
- job.json: all of the above as data, with the verl version and the sizes.

Relocatable: every path is the job folder's (`${JOB_DIR}`, which run.sh finds itself) or
one variable at the top of run.sh (MODEL_PATH, MEDALIGN_ROOT, PYTHON, NNODES,
GPUS_PER_NODE; each overridable from the environment); copy the folder anywhere.
Sized (verl_sizing.py): nodes x GPUs from plan.world_size, batches from trainer.* and
rl.*, micro-batch and vLLM memory from the planner for the model on plan.gpu; a toy
value (the tiny defaults) is named in run.sh, not replaced.
Generating needs no verl (a dry run on any machine); running needs verl and GPUs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Any

from medalign.errors import MedalignError
from medalign.models.init_from import curriculum_root
from medalign.rl_engines.verl_env import write_env
from medalign.rl_engines.verl_scripts import (
    clone_default,
    job_relative,
    shell_word,
    write_scripts,
)
from medalign.rl_engines.verl_sizing import VerlSizes, verl_sizes

# medalign algorithm -> verl algorithm.adv_estimator (verl/trainer/ppo/core_algos.py)
ESTIMATORS = {"ppo": "gae", "grpo": "grpo", "rloo": "rloo"}
RULE_REWARDS = ("correctness", "format", "length")
# The verl release the overrides are checked against (tests/unit/test_verl.py reads this
# version's bundled trainer config); run.sh warns when another one is installed.
VERL_VERSION = "0.9.1"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def check_algorithm(algorithm: str) -> None:
    """rl.engine=verl runs PPO (GAE critic), GRPO and RLOO; DPO is offline: use TRL."""
    if algorithm not in ESTIMATORS:
        raise MedalignError(
            f"rl.engine=verl: verl has no {algorithm!r} (its main_ppo trainer runs "
            f"{', '.join(ESTIMATORS)}); use rl.algorithm=ppo|grpo|rloo, or rl.engine=trl "
            f"for {algorithm}"
        )


def check_lora_settings(lora: Any) -> None:
    """verl builds its own peft adapter from `lora_rank`, `lora_alpha` and
    `target_modules` alone: a variant it cannot express is refused, not dropped."""
    if not lora.enabled:
        return
    for key, value, plain in (
        ("lora.use_dora", lora.use_dora, False),
        ("lora.init", lora.init, "default"),
        ("lora.use_rslora", lora.use_rslora, False),
        ("lora.bias", lora.bias, "none"),
        ("lora.modules_to_save", lora.modules_to_save, None),
        ("lora.loraplus_lr_ratio", lora.loraplus_lr_ratio, None),
    ):
        if value != plain:
            shown = key if isinstance(value, bool) else f"{key}={value}"
            raise MedalignError(
                f"rl.engine=verl: verl's LoRA takes lora.r, lora.alpha and "
                f"lora.target_modules only, not {shown}; use lora=default for verl, or "
                "rl.engine=trl for this variant"
            )


def write_verl_job(cfg: Any, run_dir: Path | str, start: Any) -> dict[str, Any]:
    """Write the verl job for `cfg` into `<run_dir>/verl/`; return its summary. `start`:
    the stage's `inputs.start` (init_from resolved once, by medalign.run)."""
    check_algorithm(cfg.rl.algorithm)
    check_lora_settings(cfg.lora)
    out = Path(run_dir) / "verl"
    sizes = verl_sizes(cfg)  # bad layouts and batch sizes stop before anything is written
    out.mkdir(parents=True, exist_ok=True)
    rows = verl_rows(cfg)
    if len(rows) < 2:
        raise MedalignError(
            f"rl.datasets={list(cfg.rl.datasets)}: {len(rows)} prompt(s); verl needs a train "
            "and a validation split (at least 2 prompts)"
        )
    random.Random(cfg.seed).shuffle(rows)
    n_val = max(1, len(rows) // 10)
    splits = {"train": rows[n_val:], "val": rows[:n_val]}
    from datasets import Dataset

    for split, part in splits.items():
        for i, row in enumerate(part):
            row["extra_info"]["split"], row["extra_info"]["index"] = split, i
        Dataset.from_list(part).to_parquet(str(out / f"{split}.parquet"))
    (out / "medalign_reward.py").write_text(reward_module(cfg, out))
    model_path = _model_path(cfg, Path(run_dir), start)
    roots = [Path(run_dir)] + [r for r in [curriculum_root(Path(run_dir))] if r is not None]
    variables = {
        "MODEL_PATH": shell_word(job_relative(model_path, out, roots))[1:-1],
        "MEDALIGN_ROOT": shell_word(clone_default(out, REPO_ROOT))[1:-1],
    }
    reward_model = _reward_model(cfg)
    if reward_model:  # a reward model in runs/ moves with this clone's runs/
        roots.append(REPO_ROOT)
        variables["REWARD_MODEL_PATH"] = shell_word(job_relative(reward_model, out, roots))[1:-1]
    command = verl_command(cfg, sizes=sizes, experiment=Path(run_dir).name)
    about = (
        f"{cfg.rl.algorithm} ({ESTIMATORS[cfg.rl.algorithm]}) on model={cfg.model.name}, "
        f"plan.world_size={cfg.plan.world_size} x plan.gpu={cfg.plan.gpu}"
    )
    write_env(out, VERL_VERSION)  # verl's own environment: requirements.txt, check_env.py
    write_scripts(out, command, sizes, variables, VERL_VERSION, about)
    job = {
        "engine": "verl",
        "verl_version": VERL_VERSION,
        "algorithm": cfg.rl.algorithm,
        "adv_estimator": ESTIMATORS[cfg.rl.algorithm],
        "paths": "relative to this folder (${JOB_DIR}), or run.sh's variables",
        "variables": {
            **variables,
            "NNODES": str(sizes.nnodes),
            "GPUS_PER_NODE": str(sizes.gpus_per_node),
        },
        "sizes": dataclasses.asdict(sizes),
        "train_rows": len(splits["train"]),
        "val_rows": len(splits["val"]),
        "command": command,
        "files": sorted(p.name for p in out.iterdir()) + ["job.json"],
    }
    (out / "job.json").write_text(json.dumps(job, indent=2) + "\n")
    for note in sizes.notes:
        print(f"verl: {note}")
    print(f"verl job written to {out}\nrun it where verl is installed:  bash {out / 'run.sh'}")
    return {"verl/train_rows": job["train_rows"], "verl/val_rows": job["val_rows"]}


def verl_rows(cfg: Any) -> list[dict[str, Any]]:
    """medalign's RL prompts (rewards/rl_prompts.py prompt_rows) in verl's data schema. Every
    column the reward functions read travels in extra_info, whatever its name, and the
    prompt too (verl hands compute_score no prompt; a dotted reward may read `prompts`)."""
    from medalign.rewards.rl_prompts import prompt_rows

    rows = []
    for name in cfg.rl.datasets:
        one = dataclasses.replace(cfg, rl=dataclasses.replace(cfg.rl, datasets=[name]))
        for row in prompt_rows(one):
            columns = {k: v for k, v in row.items() if k != "prompt"}
            rows.append(
                {
                    "data_source": f"medalign/{name}",
                    "prompt": row["prompt"],
                    "ability": "medical_qa",
                    "reward_model": {"style": "rule", "ground_truth": _truth(columns)},
                    "extra_info": {"split": "", "index": 0, **columns, "prompt": row["prompt"]},
                }
            )
    return rows


def _truth(columns: dict[str, Any]) -> str:
    """The gold answer as one string (verl logs and some reward managers read it)."""
    reference = json.loads(columns["reference"]) if columns.get("reference") else columns
    if reference.get("gold"):
        return str(reference["gold"])
    spans = reference.get("golds") or []
    return str(spans[0]) if spans else str(reference.get("no_answer", ""))


REWARD_TEMPLATE = '''"""verl custom reward function generated by medalign: medalign's own rewards.

verl calls compute_score(data_source, solution_str, ground_truth, extra_info) per
completion; the score is the reward.weights-weighted sum of medalign's rule rewards and
of the rewards named by dotted path (CUSTOM), each called as TRL's GRPOTrainer calls it
(prompts, completions, the dataset columns; verl gives it no token ids or trainer state).
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# MEDALIGN_ROOT (run.sh exports it): a medalign clone. Unset: the clone that wrote this
# job, relative to this file (CLONE; empty: it was written outside one). Empty, or no
# medalign/ in it: the medalign installed in verl's environment.
CLONE = {root!r}
MEDALIGN_ROOT = os.environ.get("MEDALIGN_ROOT", os.path.join(_HERE, CLONE) if CLONE else "")
# where CUSTOM's packages were imported from: relative entries are MEDALIGN_ROOT's,
# absolute ones this machine's; MEDALIGN_REWARD_PATHS (os.pathsep-separated) adds more
REWARD_PATHS = {paths!r}
WEIGHTS = {weights!r}
CUSTOM = {custom!r}
LENGTH_TARGET = {length_target!r}

_extra = [p for p in os.environ.get("MEDALIGN_REWARD_PATHS", "").split(os.pathsep) if p]
for _path in _extra + [os.path.join(MEDALIGN_ROOT, p) for p in REWARD_PATHS]:
    if os.path.isdir(_path) and _path not in sys.path:
        sys.path.append(_path)  # after verl's own environment
if MEDALIGN_ROOT and os.path.isdir(os.path.join(MEDALIGN_ROOT, "medalign")):
    sys.path.insert(0, MEDALIGN_ROOT)  # the very code that wrote this job

try:
    import medalign.rewards.functions  # noqa: F401
except ImportError as error:
    raise ImportError(
        f"medalign_reward.py: medalign is not importable ({{error}}): set MEDALIGN_ROOT to "
        "a medalign clone (top of run.sh), or install medalign in verl's environment"
    ) from error

from medalign.rewards.functions import (  # noqa: E402
    correctness,
    format_reward,
    length_reward,
    named_reward,
)

_length = length_reward(LENGTH_TARGET)
_custom = [(named_reward(name), weight) for name, weight in CUSTOM.items()]


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    info = dict(extra_info or {{}})
    prompt = info.pop("prompt", None)
    columns = {{k: [v] for k, v in info.items() if k not in ("split", "index")}}
    scores = {{
        "correctness": correctness([solution_str], **columns)[0],
        "format": format_reward([solution_str], **columns)[0],
        "length": _length([solution_str], **columns)[0],
    }}
    # None: a reward the prompt's Task does not take (Task.rl_rewards), left out as TRL does
    total = sum(WEIGHTS.get(name, 0.0) * v for name, v in scores.items() if v is not None)
    completion = [{{"role": "assistant", "content": solution_str}}]
    for fn, weight in _custom:
        value = float(fn(prompts=[prompt], completions=[completion], **columns)[0])
        scores[fn.__name__] = value
        total += weight * value
    return {{"score": total, **scores}}
'''


def reward_module(cfg: Any, out: Path | None = None) -> str:
    """The source of medalign_reward.py for `cfg.reward`, to be written into job folder
    `out`. A dotted reward is imported and its signature checked here
    (rewards/functions.py `named_reward`); the folder its package came from is written
    into the module relative to the medalign clone when inside it, else as it is here."""
    from medalign.rewards.functions import named_reward

    weights = {k: float(v) for k, v in cfg.reward.weights.items() if k in RULE_REWARDS}
    custom = {k: float(v) for k, v in cfg.reward.weights.items() if v and _dotted(k)}
    for name in custom:
        named_reward(name)
    paths = sorted({_repo_relative(p) for p in map(_import_root, custom) if p})
    root = ""
    if out is not None and out.resolve().is_relative_to(REPO_ROOT):
        root = os.path.relpath(REPO_ROOT, out.resolve())
    return REWARD_TEMPLATE.format(
        root=root,
        paths=paths,
        weights=weights,
        custom=custom,
        length_target=cfg.reward.length_target,
    )


def _repo_relative(path: str) -> str:
    """`path` relative to the medalign clone when inside it (so the job moves with it)."""
    resolved = Path(path).resolve()
    return os.path.relpath(resolved, REPO_ROOT) if resolved.is_relative_to(REPO_ROOT) else path


def _dotted(name: str) -> bool:
    return "." in name or ":" in name


def _import_root(name: str) -> str | None:
    """The sys.path entry the dotted reward's top-level package was imported from."""
    import importlib.util

    top = name.replace(":", ".").split(".", 1)[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    origin = Path(spec.origin).resolve()
    package = origin.parent if origin.name == "__init__.py" else origin
    return str(package.parent)


def _model_path(cfg: Any, run_dir: Path, start: Any) -> str:
    """The policy verl starts from: a merged model dir as given, an adapter merged into
    the base (medalign's own merge), or the base model itself."""
    from medalign.models.init_from import sft_base

    class _Run:  # sft_base writes the merge next to the run's other outputs
        path = run_dir

    return str(Path(sft_base(cfg, _Run(), start)).resolve())


def verl_command(
    cfg: Any,
    model_path: str = "${MODEL_PATH}",
    sizes: VerlSizes | None = None,
    experiment: str = "medalign",
) -> list[str]:
    """`python3 -m verl.trainer.main_ppo` with the overrides that express `cfg`, sized by
    `sizes` (verl_sizing.verl_sizes(cfg) when None). Paths are the job folder's
    (`${JOB_DIR}/...`) and the layout run.sh's variables (`${NNODES}`, `${GPUS_PER_NODE}`),
    expanded by run.sh where the job runs."""
    rl, lora, t = cfg.rl, cfg.lora, cfg.trainer
    algorithm = rl.algorithm
    s = sizes or verl_sizes(cfg)
    o = {
        "algorithm.adv_estimator": ESTIMATORS[algorithm],
        "data.train_files": "${JOB_DIR}/train.parquet",
        "data.val_files": "${JOB_DIR}/val.parquet",
        "data.prompt_key": "prompt",
        "data.max_prompt_length": s.prompt_length,
        "data.max_response_length": s.response_length,
        "data.train_batch_size": s.prompts,
        "data.filter_overlong_prompts": True,
        "data.truncation": "left",
        "actor_rollout_ref.model.path": model_path,
        "actor_rollout_ref.model.lora_rank": lora.r if lora.enabled else 0,
        "actor_rollout_ref.model.lora_alpha": lora.alpha,
        "actor_rollout_ref.model.target_modules": _targets(lora.target_modules),
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        "actor_rollout_ref.actor.optim.lr": t.learning_rate,
        "actor_rollout_ref.actor.ppo_mini_batch_size": s.prompts,  # one update per rollout
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": s.micro,
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.n": s.n,
        "actor_rollout_ref.rollout.temperature": rl.temperature,
        "actor_rollout_ref.rollout.gpu_memory_utilization": s.gpu_memory_utilization,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": s.tensor_parallel,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": s.micro,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": s.micro,
        "reward.custom_reward_function.path": "${JOB_DIR}/medalign_reward.py",
        "reward.custom_reward_function.name": "compute_score",
        "trainer.n_gpus_per_node": "${GPUS_PER_NODE}",
        "trainer.nnodes": "${NNODES}",
        "trainer.total_training_steps": s.steps,
        "trainer.project_name": cfg.logger.project,
        "trainer.experiment_name": experiment,
        "trainer.logger": "['console','wandb']" if cfg.logger.name == "wandb" else "['console']",
        "trainer.default_local_dir": "${JOB_DIR}/checkpoints",
        "trainer.val_before_train": True,
    }
    micro = s.micro
    if algorithm == "ppo":  # KL in the reward, a critic from the same model (GAE)
        o["algorithm.use_kl_in_reward"] = rl.beta > 0
        o["algorithm.kl_ctrl.kl_coef"] = rl.beta
        o["critic.model.path"] = model_path
        o["critic.optim.lr"] = 1e-5
        o["critic.ppo_micro_batch_size_per_gpu"] = micro
    else:  # GRPO/RLOO: KL as a loss term, as TRL's GRPOTrainer does with beta
        o["algorithm.use_kl_in_reward"] = False
        o["actor_rollout_ref.actor.use_kl_loss"] = rl.beta > 0
        o["actor_rollout_ref.actor.kl_loss_coef"] = rl.beta
        o["actor_rollout_ref.actor.kl_loss_type"] = "low_var_kl"
    if _reward_model(cfg):  # verl takes one reward model; rule rewards: compute_score
        o["reward.reward_model.enable"] = True
        o["reward.reward_model.model_path"] = "${REWARD_MODEL_PATH}"
    return ["python3", "-m", "verl.trainer.main_ppo", *(f"{k}={_v(v)}" for k, v in o.items())]


def _reward_model(cfg: Any) -> str | None:
    """The first weighted reward model (verl takes one), or None."""
    rm = [n for n, w in cfg.reward.weights.items() if w and cfg.reward.models.get(n)]
    return str(cfg.reward.models[rm[0]]) if rm else None


def _targets(targets: Any) -> str:
    """lora.target_modules as a Hydra override value: all-linear, or [q_proj,v_proj]."""
    if isinstance(targets, list | tuple):
        return "[" + ",".join(str(t) for t in targets) + "]"
    return str(targets)


def _v(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)
