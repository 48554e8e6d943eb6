"""`init_from`: the one way to say "start from this model", resolved the same for every
stage (SFT continues it, reward/RL merge it: `sft_base`, eval/export/generate load it).

    init_from=runs/2026-11-25/10-00-00-000000_medqa             a run: its last finished stage
    init_from=runs/2026-11-25/10-00-00-000000_curriculum:medqa  a curriculum's stage
    init_from=path/to/adapter                                   a LoRA adapter
    init_from=path/to/model                                     a full model (config.json)

A run is read through its manifest, which records for every stage the base model it
trained on (`base_model`: the base, or the merged model a stage started from) and what
it wrote (`adapter`), so the model resolved is exactly the one that run produced; an
unfinished stage, or a run without the stage asked for, is an error at start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medalign.errors import MedalignError


@dataclass(frozen=True)
class StartingPoint:
    """A model to load: `base` (dir or hub id) with an optional LoRA `adapter` on top."""

    base: str | None  # None: the configured model= (an adapter given by path)
    adapter: str | None
    spec: str
    stage: str | None = None
    run: str | None = None  # the run directory it came from

    def record(self) -> dict[str, Any]:
        return {"init_from": self.spec, "base": self.base, "adapter": self.adapter}


def resolve_init_from(spec: str | None) -> StartingPoint | None:
    """What `init_from` names, or None when unset. Reads manifests; loads no model."""
    if not spec:
        return None
    path_part, stage = _split_stage(spec)
    path = Path(path_part).expanduser()
    if (path / "manifest.json").is_file():
        return _from_run(spec, path, stage)
    if stage is not None:
        raise MedalignError(f"init_from={spec}: no run manifest.json in {path}")
    if not path.exists():
        raise MedalignError(
            f"init_from={spec}: no such directory (give an adapter dir, a model dir, a run "
            "dir, or <run dir>:<stage>)"
        )
    return _from_dir(spec, path, None)


def _split_stage(spec: str) -> tuple[str, str | None]:
    head, sep, tail = spec.rpartition(":")
    if sep and head and "/" not in tail and not Path(spec).exists():
        return head, tail
    return spec, None


def _from_dir(
    spec: str, path: Path, base: str | None, stage: str | None = None, run: Path | None = None
) -> StartingPoint:
    where = str(run) if run else None
    if (path / "adapter_config.json").is_file():
        return StartingPoint(base=base, adapter=str(path), spec=spec, stage=stage, run=where)
    if (path / "config.json").is_file():
        return StartingPoint(base=str(path), adapter=None, spec=spec, stage=stage, run=where)
    raise MedalignError(
        f"init_from={spec}: {path} holds neither a LoRA adapter (adapter_config.json) nor a "
        "model (config.json)"
    )


def _from_run(spec: str, run: Path, stage: str | None) -> StartingPoint:
    manifest = json.loads((run / "manifest.json").read_text())
    stages = manifest.get("stages") or []
    shown = ", ".join(f"{s.get('name')} ({s.get('status')})" for s in stages) or "none"
    if stage is not None:
        chosen = [s for s in stages if s.get("name") == stage]
        if not chosen:
            raise MedalignError(
                f"init_from={spec}: {run} has no stage {stage!r}; its stages: {shown}"
            )
        entry = chosen[-1]
        if entry.get("status") != "done":
            raise MedalignError(
                f"init_from={spec}: stage {stage!r} of {run} is {entry.get('status')}, not done"
            )
        if not entry.get("adapter"):
            raise MedalignError(
                f"init_from={spec}: stage {stage!r} of {run} wrote no model or adapter "
                "(an evaluation or reward stage); name a training stage"
            )
    else:
        done = [s for s in stages if s.get("status") == "done" and s.get("adapter")]
        if not done:
            raise MedalignError(
                f"init_from={spec}: {run} has no finished stage with a model; its stages: {shown}"
            )
        entry = done[-1]
    return from_stage_entry(spec, run, entry)


def from_stage_entry(spec: str, run: Path, entry: dict[str, Any]) -> StartingPoint:
    """The StartingPoint a finished stage's manifest entry (its `adapter`, `base_model`)
    names: how `init_from=<run>:<stage>` resolves, and what the curriculum hands the
    next stage directly (typed, without reading back the manifest it just wrote)."""
    adapter = Path(entry["adapter"])
    if not adapter.is_absolute() and not adapter.exists():
        adapter = run / adapter
    return _from_dir(spec, adapter, entry.get("base_model"), entry.get("name"), run)


def base_source(point: StartingPoint | None, model_cfg: Any) -> str:
    """The directory or hub id of the base model: the run's recorded base, else model=."""
    from medalign.models.load import model_source

    if point is not None and point.base:
        return point.base
    return model_source(model_cfg)


def sft_base(cfg: Any, out: Any, point: StartingPoint | None) -> str:
    """The model a reward or RL stage starts from: the base, or the starting point's
    adapter merged into its base (so the RL reference model is the SFT model). `out` is
    the stage's run directory (its RunDir: anything with `.path`).

    The merged model is written once per adapter, where the adapter lives, and every stage
    that starts from that adapter reads the same copy (at 8B each copy is about 16 GB):
    inside a curriculum in `<curriculum>/merged/<the adapter's stage>/` (both reward
    models, RL, the verl hand-off); for an adapter of a stage run (init_from=<run> or
    <run>/adapter) in `<that run>/merged/<adapter>-<digest>/`, keyed by the adapter's bytes
    and its base, so two `stage=rl` runs from one SFT run share one copy. A bare adapter
    folder (no run around it) is merged into the stage's own `sft_merged/`."""
    base = base_source(point, cfg.model)
    if point is None or not point.adapter:
        return base
    root = curriculum_root(out.path)
    owner = adapter_run(Path(point.adapter))
    if root is not None:
        merged = root / "merged" / Path(point.adapter).parent.name
    elif owner is not None:
        merged = owner / "merged" / f"{Path(point.adapter).name}-{adapter_digest(point, base)}"
    else:
        merged = out.path / "sft_merged"
    if not (merged / "config.json").is_file():
        from medalign.models.merge import merge_adapter

        merged.parent.mkdir(parents=True, exist_ok=True)
        merge_adapter(base, point.adapter, merged)
    return str(merged)


def adapter_run(adapter: Path) -> Path | None:
    """The stage run directory an adapter was written into (`<run>/adapter`), or None."""
    try:
        manifest = json.loads((adapter.parent / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return adapter.parent if manifest.get("kind") == "stage" else None


def adapter_digest(point: StartingPoint, base: str) -> str:
    """12 hex digits over the adapter's files and the base it merges into: a resumed SFT
    run that rewrote its adapter gets a new merged copy, never a stale one."""
    import hashlib

    digest = hashlib.sha256(base.encode())
    for path in sorted(Path(point.adapter).glob("adapter_*")):  # config and weights
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def curriculum_root(path: Path) -> Path | None:
    """The curriculum directory holding stage directory `path`, or None."""
    try:
        manifest = json.loads((Path(path).parent / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return Path(path).parent if manifest.get("kind") == "curriculum" else None


def load_model(cfg: Any, point: StartingPoint | None) -> tuple[Any, Any, str]:
    """(model, tokenizer, base source) for inference: base (+ quant) with the adapter."""
    import dataclasses

    from medalign.models.load import load_causal_lm, load_tokenizer

    base = base_source(point, cfg.model)
    model_cfg = cfg.model
    if point is not None and point.base:
        model_cfg = dataclasses.replace(cfg.model, path=base, builder="hub", chat_template=None)
    has_own = (
        point is not None
        and point.adapter
        and Path(point.adapter, "tokenizer_config.json").is_file()
    )
    tokenizer = load_tokenizer(model_cfg, point.adapter if has_own else base)
    model = load_causal_lm(model_cfg, cfg.quant, base)
    if point is not None and point.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, point.adapter)
    return model, tokenizer, base
