"""Typed configs: every Hydra group is merged onto a dataclass where the code receives it.

Why: a misspelled key or a wrong type must fail at start-up, naming the key and the
valid choices, before any model is loaded. Every key a user may override is declared
here (with a null default where it is optional) and in the YAML, so no `+key` is needed.
"""

from __future__ import annotations

import difflib
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from medalign.errors import MedalignError

DTYPES = ("float32", "bfloat16", "float16", "auto")


def _choice(default: Any, *choices: Any) -> Any:
    return field(default=default, metadata={"choices": choices})


@dataclass
class TinyModelConfig:
    hidden_size: int = 64
    intermediate_size: int = 192
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    vocab_size: int = 2048
    max_position_embeddings: int = 2048
    seed: int = 0
    head_std: float | None = None


@dataclass
class WorldModelConfig:
    """model=world: the synthetic world its tokenizer and pretraining read (builder `world`)."""

    seed: int = 0
    diseases: int = 300
    pretrain_steps: int = 1500
    pretrain_learning_rate: float = 2.0e-3
    pretrain_batch_size: int = 16
    pretrain_max_length: int = 128
    pretrain_repeat: int = 32  # pretrain.repeat: the textbook this many times, reshuffled


@dataclass
class ArchitectureConfig:
    """The published config.json numbers of a model: what the planner and the
    `random_init` builder need, so neither downloads anything. null: unknown."""

    family: str | None = None  # transformers model_type: llama, mistral, qwen2, gemma2, phi3
    hidden_size: int | None = None
    intermediate_size: int | None = None
    num_layers: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    head_dim: int | None = None  # null: hidden_size // num_attention_heads
    vocab_size: int | None = None
    max_position_embeddings: int | None = None
    tie_word_embeddings: bool | None = None


@dataclass
class ModelConfig:
    name: str = "tiny"
    builder: str = "tiny"
    path: str | None = None
    revision: str | None = None
    chat_template: str | None = None
    trust_remote_code: bool = False
    dtype: str = _choice("float32", *DTYPES)
    attn_implementation: str = _choice("sdpa", "sdpa", "eager", "flash_attention_2")
    liger: bool = False  # Liger kernels (fused RMSNorm/SwiGLU/RoPE/linear+CE): CUDA only
    num_layers: int | None = None  # keep only the first N layers (a real-architecture slice)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    world: WorldModelConfig = field(default_factory=WorldModelConfig)
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)


@dataclass
class QuantConfig:
    mode: str = _choice("none", "none", "int8", "nf4")
    compute_dtype: str = _choice("float32", *DTYPES)
    double_quant: bool = False
    llm_int8_threshold: float = 6.0
    prepare_for_kbit_training: bool = False


@dataclass
class LoraSettings:
    enabled: bool = True
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: Any = "all-linear"
    bias: str = _choice("none", "none", "all", "lora_only")
    use_rslora: bool = False
    modules_to_save: list[str] | None = None
    use_dora: bool = False
    init: str = _choice("default", "default", "gaussian", "pissa", "olora", "loftq")
    pissa_niter: int | None = None
    loftq_bits: int = _choice(4, 4, 8)
    loraplus_lr_ratio: float | None = None


@dataclass
class DatasetConfig:
    name: str = "pubmedqa"
    format: str = "pubmedqa"
    path: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    split: str = "train"
    eval_split: str = "test"
    limit: int | None = None
    seed: int | None = None
    on_bad_row: str = _choice("error", "error", "skip")
    rationale: bool = True
    answer_as: str = _choice("letter", "letter", "text")
    cloze_template: str = "Question: {question}"
    cop_base: int | None = _choice(None, None, 0, 1)
    options: int | None = _choice(None, None, 4, 5)
    task_args: dict[str, Any] = field(default_factory=dict)  # the Task's own settings
    prompt_template: str = "Question: {question}"
    answer_template: str = "Final answer: {answer}"
    no_answer: str = "The report does not answer this question."
    mix: dict[str, float] | None = None
    decontaminate: bool = True
    decontaminate_against: list[str] = field(
        default_factory=lambda: ["pubmedqa", "medmcqa", "medqa", "radqa"]
    )
    ngram: int = 13
    ngram_boilerplate_rows: int | None = 5
    ngram_min_overlap: float = 0.5


@dataclass
class TrainerConfig:
    """The knobs every trainer has (SFT, reward, RL): one `trainer:` section for all, its
    defaults chosen per stage kind (conf/trainer/<kind>.yaml, selected by the stage)."""

    max_steps: int = 60
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-3
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 1024
    logging_steps: int = 5
    save_steps: int = 0
    save_total_limit: int = 2
    checkpoint_on_preempt: bool = True  # SIGTERM while training: save a checkpoint, stop
    seed: int | None = None
    bf16: bool | None = None
    gradient_checkpointing: bool = False
    neftune_noise_alpha: float | None = None  # SFT: NEFTune embedding noise (TRL), null: off
    # SFT validation (stages/validation.py): held-out rows, eval/loss every eval_steps
    eval_steps: int | None = None  # null: no validation
    validation_split: str = "auto"  # auto | fraction | a split name (dev, val)
    validation_fraction: float = 0.1
    early_stopping_patience: int | None = None
    load_best_model_at_end: bool | None = None  # null: true when early stopping is on


@dataclass
class PreprocessConfig:
    """Training-data preprocessing: parallel tokenization and the tokenized-dataset cache."""

    num_proc: int | None = None  # processes for tokenization; null: every core
    cache: bool = True  # reuse tokenized datasets across stages, resumes and sweep jobs
    cache_dir: str | None = None  # null: <MEDALIGN_CACHE or ~/.cache/medalign>/tokenized


@dataclass
class SFTStageConfig:
    kind: str = "sft"
    name: str = "sft"
    packing: bool | None = None
    resume_from: str | None = None
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainerStageConfig:
    """reward and rl: their settings live in the `reward` / `rl` groups."""

    kind: str = "reward"
    name: str = "reward"
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LmEvalConfig:
    """eval.backend=lm_eval: which lm-evaluation-harness tasks, from which folders."""

    tasks: list[str] = field(default_factory=list)
    include_path: str | None = None  # folder(s) of local task YAMLs, comma-separated
    include_defaults: bool = True  # also lm-eval's installed tasks (indexing them takes ~20 s)
    num_fewshot: int | None = None  # null: each task's own


@dataclass
class EvalConfig:
    datasets: list[str] = field(
        default_factory=lambda: [
            *("pubmedqa", "medmcqa", "medqa", "radqa", "medsafetybench", "mmlu_medical")
        ]
    )
    splits: dict[str, str] | None = None
    limit: int | None = None
    limits: dict[str, int] | None = None
    mode: str = _choice("auto", "auto", "loglik", "generate")
    prompt: str = _choice("lm_eval", "lm_eval", "trained")
    batch_size: int = 16
    max_new_tokens: int = 64
    bootstrap: int = 1000
    seed: int = 0
    after_train: bool = False
    plots: bool = True  # eval/plots/*.png (matplotlib is imported only for them)
    judge_model: str | None = None
    add_bos_token: bool | None = None
    backend: str = _choice("builtin", "builtin", "lm_eval")
    generation_backend: str = _choice("hf", "hf", "vllm")  # generative tasks: HF or vLLM
    lm_eval: LmEvalConfig = field(default_factory=LmEvalConfig)


@dataclass
class EvalStageConfig:
    kind: str = "eval"
    name: str = "eval"


@dataclass
class CurriculumStageStep:
    """Per-stage tweaks inside a curriculum (null: inherit)."""

    max_steps: int | None = None
    learning_rate: float | None = None
    num_train_epochs: float | None = None
    replay: float | None = None  # null: curriculum.replay
    overrides: list[str] = field(default_factory=list)


@dataclass
class CurriculumConfig:
    order: list[str] = field(
        default_factory=lambda: ["pubmedqa", "medmcqa", "medqa", "reward", "rl"]
    )
    handoff: str = _choice("continue", "continue", "merge")
    eval_before: bool = True
    replay: float = 0.0  # each earlier SFT dataset mixed into a later stage at this weight
    stages: dict[str, CurriculumStageStep] = field(
        default_factory=lambda: {
            name: CurriculumStageStep()
            for name in ("pretrain", "pubmedqa", "medmcqa", "medqa", "radqa", "reward", "rl")
        }
    )


@dataclass
class SweepConfig:
    metric: str | None = None
    direction: str = _choice("maximize", "maximize", "minimize")
    group: str | None = None
    baseline: str | None = None  # the job the summary compares every other job against


@dataclass
class ExportConfig:
    safe_serialization: bool = True
    what: str = _choice("merged", "merged", "adapter")
    dry_run: bool = False
    push_to_hub: bool = False
    repo_id: str | None = None
    private: bool = True
    license: str | None = None


@dataclass
class GenerateConfig:
    """stage=generate (a file of questions -> answers) and stage=chat (a terminal chat)."""

    input: str | None = None
    output: str | None = None
    batch_size: int = 8
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 1.0
    system_prompt: str | None = None


@dataclass
class KindOnlyStageConfig:
    kind: str = "export"
    name: str = "export"


@dataclass
class LoggerConfig:
    name: str = _choice("wandb", "wandb", "none")
    mode: str | None = _choice(None, None, "online", "offline", "disabled")
    project: str = "medalign"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class RewardConfig:
    name: str = "both"
    objective: str = _choice("both", "helpfulness", "safety", "both")
    datasets: list[str] = field(default_factory=lambda: ["pubmedqa", "medmcqa", "medqa", "radqa"])
    safety_datasets: list[str] = field(default_factory=lambda: ["medsafetybench"])
    negatives: str = _choice("template", "template", "sample")
    pairs_path: str | None = None
    pairs_hub_id: str | None = None
    eval_fraction: float = 0.2
    limit: int | None = None
    lora: bool = True
    weights: dict[str, float] = field(
        default_factory=lambda: {
            **{"correctness": 1.0, "format": 0.2, "length": 0.1},
            **{"helpfulness": 0.0, "safety": 0.0},
        }
    )
    models: dict[str, str | None] = field(
        default_factory=lambda: {"helpfulness": None, "safety": None}
    )
    length_target: int = 120


@dataclass
class RLConfig:
    name: str = "grpo"
    algorithm: str = "grpo"  # a registered rl_algorithm (medalign/stages/rl_algorithms.py)
    datasets: list[str] = field(default_factory=lambda: ["medmcqa", "medqa", "pubmedqa"])
    limit: int | None = None
    beta: float = 0.04
    num_generations: int = 4
    max_completion_length: int = 64
    temperature: float = 1.0
    use_vllm: bool = False  # TRL's vLLM generation (GRPO/RLOO): needs vllm and CUDA
    vllm_mode: str = _choice("colocate", "colocate", "server")
    vllm_gpu_memory_utilization: float = 0.3  # colocate: vLLM's share of each GPU, in (0, 1)
    vllm_enable_sleep_mode: bool = False  # colocate: free vLLM's memory during the update
    merge_for_generation: bool = True  # HF generation with the adapter merged (exact restore)
    engine: str = _choice("trl", "trl", "verl")  # verl: write a verl job (stage=rl)
    feedback_path: str | None = None  # rl=kto: thumbs-up/down rows instead of the pairs


@dataclass
class PlanConfig:
    """stage=plan: will it fit, and how long will it take (medalign/plan)."""

    gpu: str = "a100_80gb"  # a name of medalign.plan.formulas.GPUS, or `custom`
    gpu_memory_gb: float | None = None  # overrides the named GPU's memory (GiB)
    gpu_tflops: float | None = None  # overrides its dense bf16 peak (TFLOP/s)
    world_size: int = 1
    gpus_per_node: int = 8  # a multi-node layout (the verl job): world_size on such nodes
    sharding: str = _choice("ddp", "ddp", "fsdp", "zero2", "zero3")
    for_stage: str = _choice(
        "sft", "sft", "pretrain", "reward", "rl", "dpo"
    )  # `for` is a Python keyword
    mfu: float = 0.4
    seq_len: int | None = None  # null: the trainer's max_length
    micro_batch: int | None = None  # null: the trainer's per-device batch size
    gradient_checkpointing: bool | None = None  # null: the trainer's setting


@dataclass
class PretrainConfig:
    """stage=pretrain: continued pretraining on raw text (medalign/stages/pretrain.py)."""

    path: str | None = None
    text_field: str = "text"
    hub_id: str | None = None
    split: str = "train"
    limit: int | None = None
    repeat: int = 1  # the documents N times, each pass in a new seeded order


@dataclass
class CompareConfig:
    """stage=compare: paired tests between runs (medalign/compare)."""

    runs: list[str] = field(default_factory=list)
    baseline: str | None = None
    alpha: float = 0.05
    resamples: int = 10_000
    seed: int = 0
    on: str = _choice("same", "same", "intersection")
    metrics: list[str] | None = None
    datasets: list[str] | None = None
    pool_seeds: bool = True


# stage.kind -> the schema of that kind's `stage` node. A new stage kind adds one here.
STAGE_SCHEMAS: dict[str, type] = {
    "sft": SFTStageConfig,
    "eval": EvalStageConfig,
    "curriculum": SFTStageConfig,  # its keys apply to every SFT stage of the curriculum
    "export": KindOnlyStageConfig,
    "reward": TrainerStageConfig,  # its settings live in the `reward` group
    "rl": TrainerStageConfig,  # and in the `rl` group
    "plan": KindOnlyStageConfig,  # its settings live in the `plan` group
    "generate": KindOnlyStageConfig,  # and in the `generate` group
    "chat": KindOnlyStageConfig,
    "compare": KindOnlyStageConfig,  # its settings live in the `compare` group
    "pretrain": TrainerStageConfig,  # its settings live in the `pretrain` group
}

GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "quant": QuantConfig,
    "lora": LoraSettings,
    "dataset": DatasetConfig,
    "reward": RewardConfig,
    "rl": RLConfig,
    "logger": LoggerConfig,
    "eval": EvalConfig,
    "curriculum": CurriculumConfig,
    "trainer": TrainerConfig,
    "export": ExportConfig,
    "sweep": SweepConfig,
    "plan": PlanConfig,
    "generate": GenerateConfig,
    "preprocess": PreprocessConfig,
    "compare": CompareConfig,
    "pretrain": PretrainConfig,
}
ROOT_KEYS: dict[str, type] = {"seed": int, "data_root": str, "resume": str, "init_from": str}
# Keys that moved in the redesign: an old override gets the new name, not "unknown key".
MOVED: dict[str, str] = {
    **{
        f"{group}.{key}": f"trainer.{key}"
        for group in ("stage", "reward", "rl")
        for key in (
            "max_steps",
            "num_train_epochs",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "learning_rate",
            "lr_scheduler_type",
            "warmup_steps",
            "weight_decay",
            "max_grad_norm",
            "max_length",
            "logging_steps",
            "bf16",
            "gradient_checkpointing",
        )
    },
    "checkpoint.every_steps": "trainer.save_steps",
    "checkpoint.keep": "trainer.save_total_limit",
    "stage.init_from": "init_from",
    "reward.init_from": "init_from",
    "rl.init_from": "init_from",
    "eval.adapter": "init_from",
    "eval.run": "init_from",
    "eval.stage": "init_from=<run dir>:<stage>",
    "export.stage": "init_from=<run dir>:<stage>",
    "run": "init_from",
}


@dataclass
class RunConfig:
    """The validated whole: what every stage runner receives."""

    seed: int
    data_root: str | None
    model: ModelConfig
    quant: QuantConfig
    lora: LoraSettings
    dataset: DatasetConfig
    stage: Any
    reward: RewardConfig
    rl: RLConfig
    logger: LoggerConfig
    eval: EvalConfig
    curriculum: CurriculumConfig
    trainer: TrainerConfig
    export: ExportConfig
    sweep: SweepConfig
    datasets: dict[str, DatasetConfig] = field(default_factory=dict)
    plan: PlanConfig = field(default_factory=PlanConfig)
    resume: str | None = None
    init_from: str | None = None
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


def validate(cfg: DictConfig | dict) -> RunConfig:
    """Merge each group onto its dataclass; raise MedalignError naming the bad key."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    _refuse_moved_keys(container)
    extra = set(container) - set(GROUP_SCHEMAS) - set(ROOT_KEYS) - {"stage", "hydra", "datasets"}
    if extra:
        key = sorted(extra)[0]
        raise MedalignError(_unknown_key_message("", key, _root_keys()))
    typed: dict[str, Any] = {}
    for group, schema in GROUP_SCHEMAS.items():
        typed[group] = merge_group(group, schema, container.get(group, {}))
    stage_node = container.get("stage", {})
    kind = stage_node.get("kind", "sft")
    if kind not in STAGE_SCHEMAS:
        raise MedalignError(
            f"config stage.kind: unknown stage kind {kind!r}. Valid: {', '.join(STAGE_SCHEMAS)}"
        )
    typed["stage"] = merge_group("stage", STAGE_SCHEMAS[kind], stage_node)
    catalogue = container.get("datasets") or {}
    if not isinstance(catalogue, dict):
        raise MedalignError(
            f"config datasets: expected a mapping of name -> dataset, got {catalogue!r}"
        )
    typed["datasets"] = {
        name: merge_group(f"datasets.{name}", DatasetConfig, values)
        for name, values in catalogue.items()
    }
    seed = container.get("seed", 42)
    if not isinstance(seed, int):
        raise MedalignError(f"config seed: expected an integer, got {seed!r}")
    paths = {}
    for key in ("data_root", "resume", "init_from"):
        value = container.get(key)
        if value is not None and not isinstance(value, str):
            raise MedalignError(f"config {key}: expected a path, got {value!r}")
        paths[key] = value
    return RunConfig(seed=seed, **paths, **typed)


def _refuse_moved_keys(container: dict[str, Any]) -> None:
    for old, new in MOVED.items():
        group, _, key = old.partition(".")
        node = container.get(group) if key else container
        if isinstance(node, dict) and (key or group) in node and old != "run":
            raise MedalignError(_moved_message(old, new))
        if old == "run" and container.get("run") is not None:
            raise MedalignError(_moved_message(old, new))


def _moved_message(old: str, new: str) -> str:
    return f"config {old}: this key moved; use {new} (see docs/reference/config.md)"


def check_overrides(overrides: list[str]) -> None:
    """Catch `group.key=value` typos before Hydra, whose error would suggest `+key`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # Hydra reports malformed overrides itself, with position.
        return
    for override in parsed:
        if override.key_or_group in MOVED:
            raise MedalignError(_moved_message(override.key_or_group, MOVED[override.key_or_group]))
        if override.is_add() or override.is_force_add() or override.is_delete():
            continue
        path = override.key_or_group.split(".")
        if override.package is not None or len(path) < 2:
            continue
        if path[0] == "datasets":  # datasets.<name>.<key>: a DatasetConfig key
            if len(path) > 2:
                _check_path(f"datasets.{path[1]}", DatasetConfig, path[2:])
            continue
        schema = _schema_for(path[0])
        if schema is None:
            continue
        _check_path(path[0], schema, path[1:])


def _schema_for(group: str) -> type | None:
    if group == "stage":
        return _union_schema(STAGE_SCHEMAS.values())
    return GROUP_SCHEMAS.get(group)


def _check_path(prefix: str, schema: type | dict, path: list[str]) -> None:
    valid = schema if isinstance(schema, dict) else {f.name: f.type for f in fields(schema)}
    key = path[0]
    if key not in valid:
        raise MedalignError(_unknown_key_message(prefix, key, list(valid)))
    nested = _nested_schema(schema, key)
    if nested is not None and len(path) > 1:
        _check_path(f"{prefix}.{key}", nested, path[1:])


def _nested_schema(schema: type | dict, key: str) -> type | None:
    if isinstance(schema, dict):
        return None
    spec = next((f for f in fields(schema) if f.name == key), None)
    if spec is None or spec.default_factory is MISSING:
        return None
    value = spec.default_factory()
    return type(value) if is_dataclass(value) else None


def _union_schema(schemas: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for schema in schemas:
        merged.update({f.name: f.type for f in fields(schema)})
    return merged


def _root_keys() -> list[str]:
    return sorted([*GROUP_SCHEMAS, "stage", *ROOT_KEYS])


def _unknown_key_message(prefix: str, key: str, valid: list[str]) -> str:
    full = f"{prefix}.{key}" if prefix else key
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    where = f"'{prefix}'" if prefix else "the root config"
    return (
        f"config {full}: unknown key '{key}'.{hint} "
        f"Valid keys of {where}: {', '.join(sorted(valid))}"
    )


def merge_group(group: str, schema: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise MedalignError(f"config {group}: expected a mapping, got {values!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
    except OmegaConfBaseException as exc:
        raise MedalignError(_merge_error_message(group, schema, exc)) from None
    obj = OmegaConf.to_object(merged)
    _check_choices(group, obj)
    return obj


def _merge_error_message(group: str, schema: type, exc: OmegaConfBaseException) -> str:
    full_key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
    parts = str(full_key).split(".")
    target: Any = schema
    for part in parts[:-1]:
        target = _nested_schema(target, part) or target
    valid = [f.name for f in fields(target)]
    key = parts[-1]
    if key not in valid:
        return _unknown_key_message(".".join([group, *parts[:-1]]), key, valid)
    expected = next(f.type for f in fields(target) if f.name == key)
    first_line = str(exc).splitlines()[0]
    return f"config {group}.{full_key}: expected {expected}; {first_line}"


def _check_choices(prefix: str, obj: Any) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            raise MedalignError(f"config {prefix}.{f.name}: {value!r} is not one of: {shown}")
        if is_dataclass(value):
            _check_choices(f"{prefix}.{f.name}", value)
