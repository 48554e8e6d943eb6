"""`model=world`: the tiny LLaMA that has read the synthetic world's textbook.

    python -m medalign experiment=curriculum        (uses it; built on first use)
    python -m medalign stage=medmcqa model=world data_root='${world_root:0,300}'

On first use this builder
  1. writes the world (medalign.world.store.world_root),
  2. trains a BPE tokenizer on its textbook and medalign's example text (an invented
     name is then one to three tokens, not ten: a fact becomes one association to learn),
     and saves a random LLaMA with `save_pretrained`, exactly as the `tiny` builder does,
  3. runs `python -m medalign stage=pretrain` on the textbook in a child process
     (`lora=none`: every weight; continued pretraining, the step MMed-Llama 3 and
     Meditron are built on), so the real stage, with its progress bar, does the work,
  4. keeps the pretrained model under ~/.cache/medalign/models/world-<digest>/, with the
     pretraining run's manifest and losses in pretrain_run/ beside it.
Keyed by the world's seed and size, the architecture and the pretraining settings: every
later run loads it at once. A killed first build leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from medalign.config import ModelConfig
from medalign.errors import MedalignError
from medalign.models.builders import (
    cache_root,
    tiny_corpus,
    tiny_head_std,
    write_random_llama,
)
from medalign.models.cache import build_into_cache
from medalign.registry import register
from medalign.world.store import CORPUS_VERSION, world_root

log = logging.getLogger(__name__)

WORLD_MODEL_VERSION = 1  # bump when the world model's construction changes


def world_model_digest(cfg: ModelConfig) -> str:
    settings = {
        "tiny": {**asdict(cfg.tiny), "head_std": tiny_head_std(cfg.tiny)},
        "world": asdict(cfg.world),
        "versions": [WORLD_MODEL_VERSION, CORPUS_VERSION],  # the textbook is all it reads
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


@register("model_builder", "world")
def build_world_model(cfg: ModelConfig) -> str:
    """Build (or find in the cache) the world-pretrained model; return its directory."""
    world = cfg.world
    root = Path(world_root(world.seed, world.diseases))
    target = cache_root() / "models" / f"world-{world_model_digest(cfg)}"

    def build(staging: Path) -> Path:
        textbook = (root / "corpus" / "textbook.txt").read_text(encoding="utf-8")
        paragraphs = [p for p in textbook.split("\n\n") if p.strip()]
        write_random_llama(cfg.tiny, tiny_corpus() + paragraphs, staging / "init")
        out = staging / "model"
        if world.pretrain_steps > 0:
            log.warning(
                "pretraining the world model once (%d steps; about 6 min on 2 quiet CPU cores); "
                "later runs load it from %s",
                world.pretrain_steps,
                target,
            )
            _pretrain(cfg, root, staging)
            (staging / "pretrain_run" / "model").rename(out)
            shutil.move(str(staging / "pretrain_run"), out / "pretrain_run")
        else:  # the control: the same model that has read nothing
            (staging / "init").rename(out)
        (out / "world.json").write_text(
            json.dumps({"world": asdict(world), "data_root": str(root)}, indent=1)
        )
        return out

    return build_into_cache(target, "tokenizer.json", build)


def _pretrain(cfg: ModelConfig, root: Path, staging: Path) -> None:
    world = cfg.world
    command = [
        sys.executable,
        "-m",
        "medalign",
        "stage=pretrain",
        "model=tiny",
        "model.name=world",
        "model.builder=hub",
        f"model.path={staging / 'init'}",
        "lora=none",
        "logger=none",
        f"pretrain.path={root / 'corpus'}",
        f"trainer.max_steps={world.pretrain_steps}",
        f"trainer.learning_rate={world.pretrain_learning_rate}",
        f"trainer.per_device_train_batch_size={world.pretrain_batch_size}",
        f"trainer.max_length={world.pretrain_max_length}",
        f"pretrain.repeat={world.pretrain_repeat}",
        "trainer.weight_decay=0.01",
        "trainer.logging_steps=50",
        f"seed={cfg.tiny.seed}",
        f"hydra.run.dir={staging / 'pretrain_run'}",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0:
        raise MedalignError(
            f"model=world: pretraining the world model failed (exit {done.returncode}); "
            f"its command was: {' '.join(command[1:])}"
        )
