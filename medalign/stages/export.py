"""Export: merge a run's adapter into its base model, with a model card.

    python -m medalign stage=export init_from=runs/2026-11-25/15-29-08-123456_curriculum
    python -m medalign stage=export init_from=runs/2026-11-25/15-29-08-123456_curriculum:medqa

Reads the run's manifest through `init_from` (a single stage or a curriculum; `:<stage>`
picks a stage, default the last one done), writes `model/` (merged weights as safetensors, config,
tokenizer: ready for `from_pretrained` and `push_to_hub`) and `model/README.md` into this
export's own run directory. The source run is only read, never written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError
from medalign.models.init_from import base_source, resolve_init_from
from medalign.outputs import RunDir
from medalign.registry import register
from medalign.tracking import Tracker


@register("stage", "export")
def run_export(cfg: RunConfig, run: RunDir, tracker: Tracker) -> dict[str, Any]:
    from medalign.models.merge import merge_adapter

    point = resolve_init_from(cfg.init_from)
    if point is None:
        raise MedalignError(
            "stage=export needs init_from=<a run directory> (or <run dir>:<stage>, or an adapter)"
        )
    if not point.adapter:
        raise MedalignError(f"init_from={point.spec}: a full model, no adapter to merge")
    base = base_source(point, cfg.model)
    source = Path(point.run or Path(point.adapter).parent)
    manifest_path = source / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    stage = next(
        (s for s in manifest.get("stages", []) if s.get("name") == point.stage),
        {"name": point.stage or "adapter", "base_model": base, "adapter": point.adapter},
    )
    out = merge_adapter(base, point.adapter, run.path / "model", cfg.export.safe_serialization)
    (out / "README.md").write_text(model_card(manifest, stage, source))
    run.update(exported=str(out), source_run=str(source), source_stage=stage["name"])
    return {"export/stages": len(manifest.get("stages", []))}


def model_card(manifest: dict[str, Any], stage: dict[str, Any], source: Path) -> str:
    """A Hugging Face model card: base, data, stages, hyper-parameters, evaluation."""
    done = [s for s in manifest.get("stages", []) if s.get("status") == "done"]
    config = _stage_config(stage, source)
    lines = [
        "---",
        "library_name: transformers",
        "tags: [medalign, medical, clinical-qa, lora]",
        "---",
        "",
        f"# medalign model: {source.name}",
        "",
        f"Merged from the LoRA adapter of stage **{stage['name']}** of `{source}` "
        f"(medalign {manifest.get('medalign_version')}, commit {manifest.get('git_commit')}).",
        "",
        "## Base model",
        "",
        f"`{config.get('model', {}).get('path') or config.get('model', {}).get('name')}` "
        f"(loaded from `{stage.get('base_model')}`)",
        "",
        "## Stages and data",
        "",
        "| stage | data | rows | fingerprint | seconds |",
        "|---|---|---:|---|---:|",
    ]
    for s in done:
        data = s.get("data") or {}
        lines.append(
            f"| {s['name']} | {data.get('source', '')} | {data.get('rows', '')} | "
            f"{data.get('fingerprint', '')} | {s.get('seconds', '')} |"
        )
    lora, st = config.get("lora", {}), config.get("stage", {})
    lines += [
        "",
        "## Hyper-parameters",
        "",
        f"LoRA r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, "
        f"targets={lora.get('target_modules')}; learning rate {st.get('learning_rate')}, "
        f"{st.get('max_steps')} steps, batch {st.get('per_device_train_batch_size')}, "
        f"max length {st.get('max_length')}; handoff {manifest.get('handoff', 'single stage')}.",
        "",
        "## Evaluation",
        "",
    ]
    results = source / "results.md"
    if results.is_file():
        lines.append(results.read_text().split("\n", 2)[-1])
    else:
        metrics = stage.get("metrics") or {}
        lines += ["| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, float)]
    return "\n".join(lines) + "\n"


def _stage_config(stage: dict[str, Any], source: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    folder = Path(stage.get("dir") or source)
    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    config = OmegaConf.to_container(OmegaConf.load(path))
    return config if isinstance(config, dict) else {}
