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

`model=world_copy` (model.world.copy set) continues that model in two more stage=pretrain
runs, echo drills one a row and then the textbook again beside copy drills (world/drills.py),
and caches the result under its own key: a model that copies from its prompt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
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


ECHO_PHASE = {  # the echo drills' own trainer settings (experiments/README.md, 2026-12-07)
    "batch_size": 32,  # drills a step, one a row (pretrain.packing=false): packed, none copied
    "learning_rate": 1.0e-3,
    "lr_scheduler_type": "constant",  # copying switches on late (step ~900): no decay before
    "warmup_steps": 0,
    "max_grad_norm": 1000.0,  # no clipping in effect, as measured
}


def world_model_digest(cfg: ModelConfig) -> str:
    world = asdict(cfg.world)
    if world["copy"] is None:  # without the copy phase: the model cached before it existed
        del world["copy"]
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
    if world.copy is not None:
        return _build_copying_model(cfg)
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
            _pretrain(
                cfg,
                root / "corpus",
                staging / "init",
                staging / "pretrain_run",
                steps=world.pretrain_steps,
                batch_size=world.pretrain_batch_size,
                learning_rate=world.pretrain_learning_rate,
                repeat=world.pretrain_repeat,
            )
            (staging / "pretrain_run" / "model").rename(out)
            shutil.move(str(staging / "pretrain_run"), out / "pretrain_run")
        else:  # the control: the same model that has read nothing
            (staging / "init").rename(out)
        _write_world_json(cfg, root, out)
        return out

    return build_into_cache(target, "tokenizer.json", build)


def _write_world_json(cfg: ModelConfig, root: Path, out: Path) -> None:
    (out / "world.json").write_text(
        json.dumps({"world": asdict(cfg.world), "data_root": str(root)}, indent=1)
    )


def _build_copying_model(cfg: ModelConfig) -> str:
    """model=world_copy: the plain world model (built first, or found in the cache), then
    echo drills one a row, then the textbook again beside copy drills in the world's words.
    The textbook never repeats a span, so a model that has read only it never learned to
    copy from its prompt; echo drills alone erase what it had read, hence the re-reading."""
    world, phase = cfg.world, cfg.world.copy
    assert phase is not None
    root = Path(world_root(world.seed, world.diseases))
    base = build_world_model(replace(cfg, world=replace(world, copy=None)))
    target = cache_root() / "models" / f"world-{world_model_digest(cfg)}"

    def build(staging: Path) -> Path:
        log.warning(
            "teaching the world model to copy, once (%d steps of echo drills, then %d of "
            "reading; about 15 min on 2 quiet CPU cores); later runs load it from %s",
            phase.echo_steps,
            phase.read_steps,
            target,
        )
        echo = staging / "echo"
        echo.mkdir()
        drills = echo_drills(phase.echo_steps * ECHO_PHASE["batch_size"], seed=world.seed)
        (echo / "echo.txt").write_text("\n\n".join(drills) + "\n", encoding="utf-8")
        _pretrain(
            cfg,
            echo,
            Path(base),
            staging / "copy_run",
            steps=phase.echo_steps,
            batch_size=ECHO_PHASE["batch_size"],
            learning_rate=ECHO_PHASE["learning_rate"],
            repeat=1,
            extra=[
                "pretrain.packing=false",
                f"trainer.lr_scheduler_type={ECHO_PHASE['lr_scheduler_type']}",
                f"trainer.warmup_steps={ECHO_PHASE['warmup_steps']}",
                f"trainer.max_grad_norm={ECHO_PHASE['max_grad_norm']}",
            ],
        )
        reading = _reading_corpus(cfg, root, staging / "reading")
        _pretrain(
            cfg,
            reading,
            staging / "copy_run" / "model",
            staging / "pretrain_run",
            steps=phase.read_steps,
            batch_size=world.pretrain_batch_size,
            learning_rate=phase.read_learning_rate,
            repeat=phase.read_repeat,
        )
        out = staging / "model"
        (staging / "pretrain_run" / "model").rename(out)
        shutil.move(str(staging / "pretrain_run"), out / "pretrain_run")
        shutil.rmtree(staging / "copy_run" / "model")  # its record (manifest, losses) is kept
        shutil.move(str(staging / "copy_run"), out / "copy_run")
        _write_world_json(cfg, root, out)
        return out

    return build_into_cache(target, "tokenizer.json", build)


def _reading_corpus(cfg: ModelConfig, root: Path, folder: Path) -> Path:
    """The textbook and `drills_per_pass` fresh copy drills in the world's words (read
    beside each of its passes), so the copying learned first is kept and used on findings
    and drugs."""
    world, phase = cfg.world, cfg.world.copy
    assert phase is not None
    folder.mkdir()
    shutil.copy(root / "corpus" / "textbook.txt", folder / "textbook.txt")
    drills = copy_drills(build_world(world.seed, world.diseases), phase.drills_per_pass, world.seed)
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
