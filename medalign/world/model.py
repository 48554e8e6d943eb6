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
from medalign.world.drills import copy_drills, echo_drills
from medalign.world.knowledge import build_world
from medalign.world.store import CORPUS_VERSION, world_root

log = logging.getLogger(__name__)

WORLD_MODEL_VERSION = 1  # bump when the world model's construction changes


COPY_PHASE = {  # the echo-drill phase's own trainer settings (experiments/README.md, 2026-12-07)
    "batch_size": 8,  # 8 x 128 tokens: about the 32 short drills a step it was measured with
    "learning_rate": 1.0e-3,
    "lr_scheduler_type": "constant",  # copying switches on late (step ~1,000): no decay before
}


def world_model_digest(cfg: ModelConfig) -> str:
    world = asdict(cfg.world)
    if not world.get("copy_steps"):  # without the copy phase: the model cached before it existed
        world = {k: v for k, v in world.items() if k not in ("copy_steps", "copy_drills")}
    settings = {
        "tiny": {**asdict(cfg.tiny), "head_std": tiny_head_std(cfg.tiny)},
        "world": world,
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
            start, corpus = staging / "init", root / "corpus"
            if world.copy_steps > 0:
                start = _copy_phase(cfg, staging)
                corpus = _reading_corpus(cfg, root, staging / "reading")
            _pretrain(
                cfg,
                corpus,
                start,
                staging / "pretrain_run",
                steps=world.pretrain_steps,
                batch_size=world.pretrain_batch_size,
                learning_rate=world.pretrain_learning_rate,
                repeat=world.pretrain_repeat,
            )
            (staging / "pretrain_run" / "model").rename(out)
            shutil.move(str(staging / "pretrain_run"), out / "pretrain_run")
            if world.copy_steps > 0:  # its record (manifest, losses) beside the textbook's
                shutil.rmtree(staging / "copy_run" / "model")
                shutil.move(str(staging / "copy_run"), out / "copy_run")
        else:  # the control: the same model that has read nothing
            (staging / "init").rename(out)
        (out / "world.json").write_text(
            json.dumps({"world": asdict(world), "data_root": str(root)}, indent=1)
        )
        return out

    return build_into_cache(target, "tokenizer.json", build)


def _copy_phase(cfg: ModelConfig, staging: Path) -> Path:
    """Echo drills first (world/drills.py), on the random model: the textbook never repeats
    a span, so a model that read only it never learned to copy from its prompt. Returns the
    model that copies; the textbook is read from it."""
    world = cfg.world
    corpus = staging / "copy"
    corpus.mkdir()
    drills = echo_drills(world.copy_steps * COPY_PHASE["batch_size"] * 4, seed=world.seed)
    (corpus / "echo.txt").write_text("\n\n".join(drills) + "\n", encoding="utf-8")
    log.warning("the copy phase: %d steps of echo drills before the textbook", world.copy_steps)
    _pretrain(
        cfg,
        corpus,
        staging / "init",
        staging / "copy_run",
        steps=world.copy_steps,
        batch_size=COPY_PHASE["batch_size"],
        learning_rate=COPY_PHASE["learning_rate"],
        repeat=1,
        extra=[f"trainer.lr_scheduler_type={COPY_PHASE['lr_scheduler_type']}"],
    )
    return staging / "copy_run" / "model"


def _reading_corpus(cfg: ModelConfig, root: Path, folder: Path) -> Path:
    """The textbook and, beside each of its passes, `copy_drills` fresh copy drills in the
    world's words (so the copying learned first is kept, and used on findings and drugs)."""
    world = cfg.world
    folder.mkdir()
    shutil.copy(root / "corpus" / "textbook.txt", folder / "textbook.txt")
    drills = copy_drills(build_world(world.seed, world.diseases), world.copy_drills, world.seed)
    (folder / "drills.txt").write_text("\n\n".join(drills) + "\n", encoding="utf-8")
    return folder


def _pretrain(
    cfg: ModelConfig,
    corpus: Path,
    start: Path,
    run_dir: Path,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    repeat: int,
    extra: list[str] | None = None,
) -> None:
    """`stage=pretrain` (every weight) from `start` on `corpus`, in a child process."""
    world = cfg.world
    command = [
        sys.executable,
        "-m",
        "medalign",
        "stage=pretrain",
        "model=tiny",
        "model.name=world",
        "model.builder=hub",
        f"model.path={start}",
        "lora=none",
        "logger=none",
        f"pretrain.path={corpus}",
        f"trainer.max_steps={steps}",
        f"trainer.learning_rate={learning_rate}",
        f"trainer.per_device_train_batch_size={batch_size}",
        f"trainer.max_length={world.pretrain_max_length}",
        f"pretrain.repeat={repeat}",
        "trainer.weight_decay=0.01",
        "trainer.logging_steps=50",
        f"seed={cfg.tiny.seed}",
        f"hydra.run.dir={run_dir}",
        *(extra or []),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0:
        raise MedalignError(
            f"model=world: pretraining the world model failed (exit {done.returncode}); "
            f"its command was: {' '.join(command[1:])}"
        )
