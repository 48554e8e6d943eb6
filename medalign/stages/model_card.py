"""The Hugging Face model card of an export: a pure function of the run's manifest and the
recorded config of each stage, so it is tested without a model.

    from medalign.stages.model_card import model_card
    text = model_card(manifest, stage, configs, source_name="15-29-08_curriculum")

The card holds the hub metadata block (`base_model`, `datasets`, `license`, `tags`,
`model-index` with the exported stage's evaluation), the data and hyper-parameters of
every training stage (each read from that stage's own recorded config), the evaluation
tables and a usage snippet that loads the exported model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# data sets whose public hub copy medalign's loaders read (conf/dataset/*.yaml comments)
METRIC_TYPES = {"acc": "accuracy", "acc_norm": "accuracy", "f1": "f1", "em": "exact_match"}
TRAINER_KEYS = ("learning_rate", "max_steps", "per_device_train_batch_size", "max_length")


def base_model_id(config: dict[str, Any]) -> str | None:
    """The hub id of the base model from a recorded config (`model.path`), never a local
    or cache path; None when the base is not a hub model (e.g. the tiny test model)."""
    model = config.get("model") or {}
    path = model.get("path")
    if not path or Path(path).is_absolute() or path.startswith((".", "~")) or Path(path).exists():
        return None
    return path if path.count("/") == 1 else None


def model_card(
    manifest: dict[str, Any],
    stage: dict[str, Any],
    configs: dict[str, dict[str, Any]],
    *,
    source_name: str,
    what: str = "merged",
    repo_id: str | None = None,
    license: str | None = None,
) -> str:
    """The README.md of the exported model. `configs`: stage name -> its recorded config."""
    done = [s for s in manifest.get("stages", []) if s.get("status") == "done"]
    at = next((i for i, s in enumerate(done) if s["name"] == stage["name"]), len(done) - 1)
    upto = done[: at + 1]
    trained = [s for s in upto if s.get("adapter")]
    config = configs.get(stage["name"], {})
    base = base_model_id(config)
    model_cfg = config.get("model") or {}
    name = repo_id.split("/")[-1] if repo_id else f"medalign-{source_name}"
    meta = _metadata(trained, stage, configs, base, name, what, license)
    lines = [
        "---",
        _yaml(meta).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        f"{'Merged weights' if what == 'merged' else 'The LoRA adapter'} of stage "
        f"**{stage['name']}** of the medalign run `{source_name}` "
        f"(medalign {manifest.get('medalign_version')}, commit {manifest.get('git_commit')}).",
        "",
        "## Base model",
        "",
        f"`{base or model_cfg.get('path') or model_cfg.get('name')}`"
        + ("" if base else " (a local model, not on the hub)"),
        "",
        "## Stages and data",
        "",
        "| stage | dataset | source | rows | fingerprint | seconds |",
        "|---|---|---|---:|---|---:|",
    ]
    for s in upto:
        data = s.get("data") or {}
        lines.append(
            f"| {s['name']} | {_dataset_id(configs.get(s['name'], {})) or ''} | "
            f"{_source_label(data)} | {data.get('rows', '')} | {data.get('fingerprint', '')} | "
            f"{s.get('seconds', '')} |"
        )
    lines += ["", "## Training hyper-parameters", "", *_hyper_table(trained, configs)]
    if manifest.get("handoff"):
        lines += [
            "",
            f"Stages hand over by `{manifest['handoff']}` "
            "(continue: one adapter trained on; merge: merged, then a new adapter).",
        ]
    lines += [
        "",
        "## Evaluation",
        "",
        *_evaluation(manifest, stage),
        "",
        "## Usage",
        "",
        "```python",
        *usage_snippet(repo_id or "./model", what),
        "```",
    ]
    return "\n".join(lines) + "\n"


def usage_snippet(model_id: str, what: str) -> list[str]:
    """Python lines that load the exported model and answer one question."""
    if what == "adapter":
        load = [
            "from peft import AutoPeftModelForCausalLM",
            "from transformers import AutoTokenizer",
            "",
            f'MODEL = "{model_id}"',
            "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
            "model = AutoPeftModelForCausalLM.from_pretrained(MODEL)  # base + this adapter",
        ]
    else:
        load = [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'MODEL = "{model_id}"',
            "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
            'model = AutoModelForCausalLM.from_pretrained(MODEL, dtype="auto")',
        ]
    return [
        *load,
        'messages = [{"role": "user", "content": "Is aspirin an NSAID?"}]',
        "inputs = tokenizer.apply_chat_template(",
        '    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True',
        ").to(model.device)",
        "output = model.generate(**inputs, max_new_tokens=128)",
        'answer = output[0, inputs["input_ids"].shape[1] :]',
        "print(tokenizer.decode(answer, skip_special_tokens=True))",
    ]


def _metadata(trained, stage, configs, base, name, what, license) -> dict[str, Any]:
    datasets = []  # only hub datasets the stages actually read, never what a name suggests
    for s in trained:
        for ident in hub_sources(s.get("data") or {}):
            if ident not in datasets:
                datasets.append(ident)
    tagged = [_spec(configs.get(s["name"], {})) for s in trained]
    kinds = sorted({spec.kind for spec in tagged if not spec.fine_tunes})  # SFT: no tag
    meta: dict[str, Any] = {}
    if base:
        meta["base_model"] = base
    meta.update(
        library_name="peft" if what == "adapter" else "transformers",
        license=license or "other",
        datasets=datasets,
        pipeline_tag="text-generation",
        tags=["medalign", "medical", "clinical-qa", "lora", *kinds],
    )
    results = _model_index_results(stage.get("metrics") or {}, _eval_results(stage))
    if results:
        meta["model-index"] = [{"name": name, "results": results}]
    return meta


def hub_sources(data: dict[str, Any]) -> list[str]:
    """The hub ids among the sources a stage read (`hub:<owner>/<name>[/<config>]`)."""
    sources = data.get("source") or []
    sources = sources if isinstance(sources, list) else [sources]
    return [
        "/".join(str(x).removeprefix("hub:").split("/")[:2])
        for x in sources
        if str(x).startswith("hub:")
    ]


def _eval_results(stage: dict[str, Any]) -> dict[str, Any]:
    """The stage's eval/results.json (split, n, source per dataset), or {}."""
    import json

    path = Path(stage.get("dir") or "") / "eval" / "results.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _model_index_results(
    metrics: dict[str, Any], evaluated: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """model-index results, each dataset with the split and n it was scored on; a hub
    `type` only where the evaluation read that hub dataset (else the local name)."""
    evaluated = evaluated or {}
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "eval" or not isinstance(value, int | float):
            continue
        if value != value:  # NaN: nothing to count, not a result
            continue
        _, dataset, metric = parts
        by_dataset.setdefault(dataset, []).append(
            {"type": METRIC_TYPES.get(metric, metric), "name": metric, "value": round(value, 4)}
        )
    out = []
    for dataset, rows in sorted(by_dataset.items()):
        result = evaluated.get(dataset) or {}
        source = str(result.get("source") or "")
        entry: dict[str, Any] = {"name": dataset, "type": dataset}
        if source.startswith("hub:"):
            entry["type"] = hub_sources({"source": source})[0]
        if result.get("split"):
            entry["split"] = result["split"]
        if result.get("n") is not None:
            entry["args"] = {"n": result["n"], "source": Path(source).name or source}
        out.append(
            {
                "task": {"type": "text-generation", "name": "clinical question answering"},
                "dataset": entry,
                "metrics": rows,
            }
        )
    return out


def _spec(config: dict[str, Any]) -> Any:
    """The StageSpec of a run's recorded config (its stage.kind; SFT when absent)."""
    from medalign.stages.spec import stage_spec

    return stage_spec((config.get("stage") or {}).get("kind", "sft"))


def _dataset_id(config: dict[str, Any]) -> str | None:
    """The dataset an SFT stage trained on (hub id where known); None for stages that
    train on something else (reward pairs, RL prompts) or on nothing (evaluation)."""
    if not _spec(config).fine_tunes:
        return None
    dataset = config.get("dataset") or {}
    return dataset.get("name")


def _source_label(data: dict[str, Any]) -> str:
    """Where the rows came from: a hub id as is, a local file by its name only."""
    sources = data.get("source") or []
    sources = sources if isinstance(sources, list) else [sources]
    return ", ".join(
        Path(str(s)).name if str(s).startswith(("/", ".", "~")) else str(s) for s in sources
    )


def _hyper_table(trained: list[dict[str, Any]], configs: dict[str, dict[str, Any]]) -> list[str]:
    """One row per training stage, each from its own recorded config."""
    rows = [
        "| stage | kind | learning rate | steps | batch | max length | LoRA r / alpha / dropout |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for s in trained:
        config = configs.get(s["name"], {})
        spec = _spec(config)
        kind = spec.kind
        # SFT: `trainer` (after the redesign) or `stage`; reward and RL: their own group
        section = {
            **(config.get("stage") or {}),
            **(config.get("trainer") or {}),
            **((config.get(spec.settings) or {}) if spec.settings else {}),
        }
        lora = config.get("lora") or {}
        label = f"{kind} ({section['algorithm']})" if section.get("algorithm") else kind
        lora_text = (
            f"LoRA r={lora.get('r')} / {lora.get('alpha')} / {lora.get('dropout')}"
            if lora.get("enabled", True)
            else "full fine-tune"
        )
        cells = [_cell(section.get(k)) for k in TRAINER_KEYS]
        rows.append(f"| {s['name']} | {label} | {' | '.join(cells)} | {lora_text} |")
    return rows


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _evaluation(manifest: dict[str, Any], stage: dict[str, Any]) -> list[str]:

    from medalign.reports.paired import scores_markdown

    lines = []
    table = manifest.get("results") or {}
    if table:
        datasets = sorted({d for row in table.values() for d in row})
        lines += [
            "Each dataset after each stage (accuracy; RadQA F1; MedSafetyBench refusal rate) "
            "with its 95% interval; each column names its split and n (n/a: nothing to "
            "count). Differences between stages are claims only where the run's paired "
            "table (results.md, `stage=compare`) marks them.",
            "",
            scores_markdown(manifest, table, datasets).rstrip("\n"),
        ]
        lines.append("")
    metrics = {k: v for k, v in (stage.get("metrics") or {}).items() if isinstance(v, float)}
    if metrics:
        lines += [f"Metrics of stage {stage['name']}:", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items()]
    return lines or ["No evaluation was recorded for this run."]


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
