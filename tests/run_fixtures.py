"""Hand-built run directories (the layout a finished run leaves), without training.

A curriculum-shaped manifest with real LoRA adapters on the tiny model: what generate,
chat, export and the HTML report read. Building one takes about a second.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from medalign.config import ModelConfig
from tests.conftest import default

METRICS = {
    "before": {"eval/pubmedqa/acc": 0.35, "eval/medqa/acc": 0.26, "eval/radqa/f1": 0.11},
    "pubmedqa": {
        "train/loss": 1.92,
        "eval/pubmedqa/acc": 0.58,
        "eval/pubmedqa/false_confidence": 0.7,
        "eval/medqa/acc": 0.27,
        "eval/radqa/f1": 0.12,
    },
    "medqa": {
        "train/loss": 1.41,
        "eval/pubmedqa/acc": 0.55,
        "eval/medqa/acc": 0.34,
        "eval/radqa/f1": 0.16,
    },
}
TRAINING = {"pubmedqa": (3e-3, 60, 8), "medqa": (1e-3, 40, 4)}


def tiny_dir() -> str:
    from medalign.models.builders import build_tiny

    return build_tiny(default(ModelConfig))


def save_adapter(base: str, target: Path, seed: int = 0) -> None:
    """A LoRA adapter on `base` whose B is not zero, so it changes the model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    peft = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    )
    peft.save_pretrained(target)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)


def stage_config(
    name: str, base_id: str | None = None, entity: str | None = None
) -> dict[str, Any]:
    lr, steps, batch = TRAINING.get(name, (None, None, None))
    model = {"name": "biomistral_7b", "builder": "hub", "path": base_id} if base_id else {}
    return {
        "model": model or {"name": "tiny", "builder": "tiny", "path": None},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"},
        "logger": {"name": "wandb", "project": "medalign", "entity": entity},
        "dataset": {"name": name, "hub_id": f"example/{name}" if name != "before" else None},
        "stage": {
            "kind": "sft" if name in TRAINING else "eval",
            "name": name,
            "learning_rate": lr,
            "max_steps": steps,
            "per_device_train_batch_size": batch,
            "max_length": 1024,
        },
    }


def make_curriculum(
    root: Path, adapters: bool = True, wandb: bool = True, base_id: str | None = None
) -> Path:
    """root/run: a finished curriculum (before -> pubmedqa -> medqa), continue handoff.

    `base_id`: the hub id the stages' recorded configs name as model.path (the adapters
    themselves are always trained on the tiny model)."""
    base = tiny_dir() if adapters else "/cache/medalign/models/tiny-abc"
    run = root / "run"
    stages = []
    for k, name in enumerate(METRICS):
        folder = run / f"{k}-{name}"
        folder.mkdir(parents=True)
        config = stage_config(name, base_id, entity="lab" if wandb else None)
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(config))
        entry: dict[str, Any] = {
            "name": name,
            "dir": str(folder),
            "status": "done",
            "started": "2026-11-25T10:00:00+0000",
            "finished": "2026-11-25T10:05:00+0000",
            "seconds": 300.0 + k,
            "metrics": METRICS[name],
            "wandb_run_id": f"abc{k}xyz" if wandb else None,
        }
        if name in TRAINING:
            if adapters:
                save_adapter(base, folder / "adapter", seed=k)
            entry.update(
                adapter=str(folder / "adapter"),
                base_model=base,
                data={
                    "source": [f"/data/{name}/train.json"],
                    "rows": 16 * k,
                    "fingerprint": f"f{k}",
                },
            )
        stages.append(entry)
    manifest = {
        "kind": "curriculum",
        "group": run.name,
        "order": list(TRAINING),
        "handoff": "continue",
        "medalign_version": "0.1.0",
        "git_commit": "c39df0f",
        "started": "2026-11-25T10:00:00+0000",
        "stages": stages,
    }
    from medalign.reports.results import results_table

    manifest["results"] = results_table(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return run


def write_eval_run(
    folder: Path,
    correct: dict[str, list[float]],
    *,
    seed: int = 42,
    overrides: list[str] | None = None,
    fingerprint: str = "abc",
    backend: str = "builtin",
    clusters: dict[str, list[str]] | None = None,
    shuffle: bool = False,
    lora_r: int = 8,
    metric_of: dict[str, str] | None = None,
) -> Path:
    """A finished evaluation as medalign writes it: eval/predictions.jsonl (with
    per-question scores), eval/results.json, config.yaml and .hydra/overrides.yaml.
    `metric_of`: a dataset's metric name other than acc (`{"medqa:cot": "acc_cot_strict"}`)."""
    rows = []
    metric = dict.fromkeys(correct, "acc") | (metric_of or {})
    for dataset, values in correct.items():
        for k, ok in enumerate(values):
            row = {"dataset": dataset, "id": f"q{k}", "scores": {metric[dataset]: ok}}
            if clusters and dataset in clusters:
                row["cluster"] = clusters[dataset][k]
            rows.append(row)
    if shuffle:
        random.Random(0).shuffle(rows)
    (folder / "eval").mkdir(parents=True)
    (folder / "eval" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from medalign.eval.metrics import with_ci

    results = {
        d: {
            "n": len(v),
            "split": "test",
            "fingerprint": fingerprint,
            "limit": None,
            "metrics": {metric[d]: with_ci(v)},
        }
        for d, v in correct.items()
    }
    (folder / "eval" / "results.json").write_text(json.dumps(results))
    config: dict = {"seed": seed, "eval": {"backend": backend}, "lora": {"r": lora_r}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides or []))
    return folder
