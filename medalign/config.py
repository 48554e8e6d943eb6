"""Typed configs: every Hydra group is merged onto a dataclass where the code receives it.

Why: a misspelled key or a wrong type must fail at start-up, naming the key and the
valid choices, before any model is loaded. Every key a user may override is declared
once: its value (null where it is optional) in the YAML under conf/, its type and its
choices here, with no default, so the two can never disagree. A key the YAML does not
give a value is refused at start-up, naming the key. The one exception is
CurriculumStageStep: a per-stage tweak, each key null ("inherit") unless a stage sets it.
Code that needs a group's defaults composes them (tests: tests/conftest.py `defaults`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from medalign.errors import MedalignError

DTYPES = ("float32", "bfloat16", "float16", "auto")


def _choice(*choices: Any) -> Any:
    """A key whose value must be one of `choices` (its value: the YAML's, see above)."""
    return field(metadata={"choices": choices})


@dataclass
class TinyModelConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int
    seed: int
    head_std: float | None


@dataclass
class CopyPhaseConfig:
    """model=world_copy: how the world model learns to copy from its prompt (world/model.py)."""

    echo_steps: int  # echo drills, one a row, from the plain world model
    drills_per_pass: int  # copy drills read beside each pass of the textbook afterwards
    read_steps: int  # then the textbook again, packed, with those drills
    read_learning_rate: float
    read_repeat: int


@dataclass
class WorldModelConfig:
    """model=world: the synthetic world its tokenizer and pretraining read (builder `world`)."""

    seed: int
    diseases: int
    pretrain_steps: int
    pretrain_learning_rate: float
    pretrain_batch_size: int
    pretrain_max_length: int
    pretrain_repeat: int  # pretrain.repeat: the textbook this many times, reshuffled
    copy: CopyPhaseConfig | None  # null: no copy phase (model=world)


@dataclass
class ArchitectureConfig:
    """The published config.json numbers of a model: what the planner and the
    `random_init` builder need, so neither downloads anything. null: unknown."""

    family: str | None  # transformers model_type: llama, mistral, qwen2, gemma2, phi3
    hidden_size: int | None
    intermediate_size: int | None
    num_layers: int | None
    num_attention_heads: int | None
    num_key_value_heads: int | None
    head_dim: int | None  # null: hidden_size // num_attention_heads
    vocab_size: int | None
    max_position_embeddings: int | None
    tie_word_embeddings: bool | None


@dataclass
class ModelConfig:
    name: str
    builder: str
    path: str | None
    revision: str | None
    chat_template: str | None
    trust_remote_code: bool
    dtype: str = _choice(*DTYPES)
    attn_implementation: str = _choice("sdpa", "eager", "flash_attention_2")
    liger: bool  # Liger kernels (fused RMSNorm/SwiGLU/RoPE/linear+CE): CUDA only
    num_layers: int | None  # keep only the first N layers (a real-architecture slice)
    tiny: TinyModelConfig
    world: WorldModelConfig | None  # model=world's synthetic world (null for every other model)
    architecture: ArchitectureConfig


@dataclass
class QuantConfig:
    mode: str = _choice("none", "int8", "nf4")
    compute_dtype: str = _choice(*DTYPES)
    double_quant: bool
    llm_int8_threshold: float
    prepare_for_kbit_training: bool


@dataclass
class LoraSettings:
    enabled: bool
    r: int
    alpha: int
    dropout: float
    target_modules: Any
    bias: str = _choice("none", "all", "lora_only")
    use_rslora: bool
    modules_to_save: list[str] | None
    use_dora: bool
    init: str = _choice("default", "gaussian", "pissa", "olora", "loftq")
    pissa_niter: int | None
    loftq_bits: int = _choice(4, 8)
    loraplus_lr_ratio: float | None


@dataclass
class DatasetConfig:
    name: str
    format: str
    path: str | None
    hub_id: str | None
    hub_config: str | None
    split: str
    eval_split: str
    limit: int | None
    seed: int | None
    on_bad_row: str = _choice("error", "skip")
    rationale: bool
    answer_as: str = _choice("letter", "text")
    cloze_template: str
    cop_base: int | None = _choice(None, 0, 1)
    options: int | None = _choice(None, 4, 5)
    task_args: dict[str, Any]  # the Task's own settings
    prompt_template: str
    answer_template: str
    no_answer: str
    mix: dict[str, float] | None
    decontaminate: bool
    decontaminate_against: list[str]
    ngram: int
    ngram_boilerplate_rows: int | None
    ngram_min_overlap: float


@dataclass
class TrainerConfig:
    """The knobs every trainer has (SFT, reward, RL): one `trainer:` section for all, its
    values chosen per stage kind (conf/trainer/<kind>.yaml, selected by the stage)."""

    max_steps: int
    num_train_epochs: float
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    lr_scheduler_type: str
    warmup_steps: float
    weight_decay: float
    max_grad_norm: float
    max_length: int
    logging_steps: int
    save_steps: int
    save_total_limit: int
    checkpoint_on_preempt: bool  # SIGTERM while training: save a checkpoint, stop
    seed: int | None
    bf16: bool | None
    gradient_checkpointing: bool
    neftune_noise_alpha: float | None  # SFT: NEFTune embedding noise (TRL), null: off
    # SFT validation (stages/validation.py): held-out rows, eval/loss every eval_steps
    eval_steps: int | None  # null: no validation
    validation_split: str  # auto | fraction | a split name (dev, val)
    validation_fraction: float
    early_stopping_patience: int | None
    load_best_model_at_end: bool | None  # null: true when early stopping is on


@dataclass
class PreprocessConfig:
    """Training-data preprocessing: parallel tokenization and the tokenized-dataset cache."""

    num_proc: int | None  # processes for tokenization; null: every core
    cache: bool  # reuse tokenized datasets across stages, resumes and sweep jobs
    cache_dir: str | None  # null: <MEDALIGN_CACHE or ~/.cache/medalign>/tokenized


@dataclass
class SFTStageConfig:
    kind: str
    name: str
    packing: bool | None
    resume_from: str | None
    trainer_kwargs: dict[str, Any]


@dataclass
class TrainerStageConfig:
    """reward and rl: their settings live in the `reward` / `rl` groups."""

    kind: str
    name: str
    trainer_kwargs: dict[str, Any]


@dataclass
class LmEvalConfig:
    """eval.backend=lm_eval: which lm-evaluation-harness tasks, from which folders."""

    tasks: list[str]
    include_path: str | None  # folder(s) of local task YAMLs, comma-separated
    include_defaults: bool  # also lm-eval's installed tasks (indexing them takes ~20 s)
    num_fewshot: int | None  # null: each task's own


@dataclass
class EvalConfig:
    datasets: list[str]
    splits: dict[str, str] | None
    limit: int | None
    limits: dict[str, int] | None
    mode: str = _choice("auto", "loglik", "generate", "cot")
    prompt: str = _choice("lm_eval", "trained")
    batch_size: int
    max_new_tokens: int
    max_new_tokens_per_dataset: dict[str, int] | None  # e.g. {medqa: 512}
    samples: int  # eval.mode=cot: answers per question (> 1: maj@k, needs temperature > 0)
    temperature: float  # eval.mode=cot: 0 = greedy
    also_cot: list[str]  # datasets scored by chain-of-thought as well (results key <name>:cot)
    bootstrap: int
    seed: int
    after_train: bool
    plots: bool  # eval/plots/*.png (matplotlib is imported only for them)
    judge_model: str | None
    add_bos_token: bool | None
    backend: str = _choice("builtin", "lm_eval")
    generation_backend: str = _choice("hf", "vllm")  # generative tasks: HF or vLLM
    lm_eval: LmEvalConfig


@dataclass
class EvalStageConfig:
    kind: str
    name: str


@dataclass
class CurriculumStageStep:
    """Per-stage tweaks inside a curriculum (null: inherit)."""

    max_steps: int | None = None
    learning_rate: float | None = None
    num_train_epochs: float | None = None
    replay: float | None = None  # null: curriculum.replay
    # datasets trained alongside the stage's own, {name: mix weight} (a safety stage's
    # benign questions beside its harmful requests); replayed later like the stage's own
    mix: dict[str, float] | None = None
    overrides: list[str] = field(default_factory=list)


@dataclass
class CurriculumConfig:
    order: list[str]
    handoff: str = _choice("continue", "merge")
    eval_before: bool
    replay: float  # each earlier SFT dataset mixed into a later stage at this weight
    stages: dict[str, CurriculumStageStep]


@dataclass
class SweepConfig:
    metric: str | None
    direction: str = _choice("maximize", "minimize")
    group: str | None
    baseline: str | None  # the job the summary compares every other job against


@dataclass
class ExportConfig:
    safe_serialization: bool
    what: str = _choice("merged", "adapter")
    dry_run: bool
    push_to_hub: bool
    repo_id: str | None
    private: bool
    license: str | None


@dataclass
class GenerateConfig:
    """stage=generate (a file of questions -> answers) and stage=chat (a terminal chat)."""

    input: str | None
    output: str | None
    batch_size: int
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    system_prompt: str | None


@dataclass
class KindOnlyStageConfig:
    kind: str
    name: str


@dataclass
class LoggerConfig:
    name: str = _choice("wandb", "none")
    mode: str | None = _choice(None, "online", "offline", "disabled")
    project: str
    entity: str | None
    group: str | None
    tags: list[str]


@dataclass
class RewardConfig:
    name: str
    objective: str = _choice("helpfulness", "safety", "both")
    datasets: list[str]
    safety_datasets: list[str]
    negatives: str = _choice("template", "sample")
    pairs_path: str | None
    pairs_hub_id: str | None
    eval_fraction: float
    limit: int | None
    lora: bool
    # a canary for the reward-hacking flag: these objectives' reward models train on every
    # training pair reversed (rejected above chosen), so RL against them must hack
    reversed: list[str]
    weights: dict[str, float]
    models: dict[str, str | None]
    length_target: int


@dataclass
class RLConfig:
    name: str
    algorithm: str  # a registered rl_algorithm (medalign/stages/rl_algorithms.py)
    datasets: list[str]
    limit: int | None
    beta: float
    num_generations: int
    max_completion_length: int
    temperature: float
    use_vllm: bool  # TRL's vLLM generation (GRPO/RLOO): needs vllm and CUDA
    vllm_mode: str = _choice("colocate", "server")
    vllm_gpu_memory_utilization: float  # colocate: vLLM's share of each GPU, in (0, 1)
    vllm_enable_sleep_mode: bool  # colocate: free vLLM's memory during the update
    merge_for_generation: bool  # HF generation with the adapter merged (exact restore)
    engine: str = _choice("trl", "verl")  # verl: write a verl job (stage=rl)
    feedback_path: str | None  # rl=kto: thumbs-up/down rows instead of the pairs
    # rl=dpo|kto: the reward stage's pairs, or the SFT model's own samples ranked by
    # reward.weights, best-of-n against worst-of-n (rewards/ranked_pairs.py)
    pairs: str = _choice("reward_stage", "ranked")


@dataclass
class PlanConfig:
    """stage=plan: will it fit, and how long will it take (medalign/plan)."""

    gpu: str  # a name of medalign.plan.formulas.GPUS, or `custom`
    gpu_memory_gb: float | None  # overrides the named GPU's memory (GiB)
    gpu_tflops: float | None  # overrides its dense bf16 peak (TFLOP/s)
    world_size: int
    gpus_per_node: int  # a multi-node layout (the verl job): world_size on such nodes
    sharding: str = _choice("ddp", "fsdp", "zero2", "zero3")
    for_stage: str = _choice("sft", "pretrain", "reward", "rl", "dpo")  # `for` is a Python keyword
    mfu: float
    seq_len: int | None  # null: the trainer's max_length
    micro_batch: int | None  # null: the trainer's per-device batch size
    gradient_checkpointing: bool | None  # null: the trainer's setting


@dataclass
class PretrainConfig:
    """stage=pretrain: continued pretraining on raw text (medalign/stages/pretrain.py)."""

    path: str | None
    text_field: str
    hub_id: str | None
    split: str
    limit: int | None
    repeat: int  # the documents N times, each pass in a new seeded order
    packing: bool  # false: one document a row, never cut (stages/pretrain.py)


@dataclass
class CompareConfig:
    """stage=compare: paired tests between runs (medalign/compare)."""

    runs: list[str]
    baseline: str | None
    alpha: float
    resamples: int
    seed: int
    on: str = _choice("same", "intersection")
    metrics: list[str] | None
    datasets: list[str] | None
    pool_seeds: bool
    min_seeds: int
    max_resamples: int


# The schema of each kind's `stage` node is its StageSpec's (medalign/stages/spec.py),
# looked up by stage.kind in the registry: a plugin's kind brings its own.
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
    datasets: dict[str, DatasetConfig]
    plan: PlanConfig
    resume: str | None
    init_from: str | None
    generate: GenerateConfig
    preprocess: PreprocessConfig
    compare: CompareConfig
    pretrain: PretrainConfig


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
    typed["stage"] = merge_group("stage", stage_schema(kind), stage_node)
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


def stage_schema(kind: Any) -> type:
    """The dataclass of `stage.*` for `kind`: its StageSpec's, from the registry (a
    plugin's kind too); an unknown kind is one line listing the registered ones."""
    from medalign.registry import get, names

    kind = str(kind)
    known = names("stage")  # a broken plugin raises here, naming itself
    if kind not in known and "." not in kind and ":" not in kind:
        raise MedalignError(
            f"config stage.kind: unknown stage kind {kind!r}. Valid: {', '.join(known)}"
            " (a kind of your own: docs/extend/stage.md)"
        )
    try:
        return get("stage", kind).schema
    except MedalignError as exc:  # a dotted path: why it did not import
        raise MedalignError(f"config stage.kind: {exc}") from None


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
        from medalign.registry import get, names

        return _union_schema(get("stage", kind).schema for kind in names("stage"))
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
    kind = get_type_hints(schema).get(key)
    return kind if isinstance(kind, type) and is_dataclass(kind) else None


def _union_schema(schemas: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for schema in schemas:
        merged.update({f.name: f.type for f in fields(schema)})
    return merged


def _root_keys() -> list[str]:
    return sorted([*GROUP_SCHEMAS, "stage", *ROOT_KEYS])


def _unknown_key_message(prefix: str, key: str, valid: list[str], source: str = "") -> str:
    full = f"{prefix}.{key}" if prefix else key
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    where = f"'{prefix}'" if prefix else "the root config"
    return (
        f"config {full}{source}: unknown key '{key}'.{hint} "
        f"Valid keys of {where}: {', '.join(sorted(valid))}"
    )


_DATASET_HINT = (
    " (a dataset YAML starts from a base: `defaults: [_multiple_choice, _self_]` for a "
    "multiple-choice exam declared in YAML, or `defaults: [_base, _self_]` and a `format:` "
    "naming its Task; see docs/extend/dataset.md)"
)


def _option_of(group: str) -> str:
    """` (lora=mylora)`: the option a group's values came from, when a Hydra run composed
    them (a missing or unknown key is then in that option's file, not on the command
    line); `datasets.<name>`: the dataset's own YAML."""
    head, _, rest = group.partition(".")
    if head == "datasets" and rest:
        return f" (from dataset/{rest}.yaml)"
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return ""
        choices = HydraConfig.get().runtime.choices
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    choice = choices.get(head) or choices.get(f"{head}@_global_.{head}")
    return f" (from {head}={choice})" if choice else ""


def merge_group(group: str, schema: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise MedalignError(f"config {group}: expected a mapping, got {values!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        obj = OmegaConf.to_object(merged)
    except MissingMandatoryValue as exc:
        key = f"{group}.{exc.full_key}" if exc.full_key else group
        raise MedalignError(
            f"config {key}{_option_of(group)}: no value. Every key's value is declared in "
            "the YAML under "
            "conf/ (null where it is optional): give it one there, in the option's file, "
            "or on the command line"
            + (_DATASET_HINT if group.split(".")[0] in ("dataset", "datasets") else "")
        ) from None
    except OmegaConfBaseException as exc:
        raise MedalignError(_merge_error_message(group, schema, exc)) from None
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
        return _unknown_key_message(".".join([group, *parts[:-1]]), key, valid, _option_of(group))
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
