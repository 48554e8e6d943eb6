"""The world's data root in the cache: written once per seed and size, then only read.

    world_root(0, 300)   ->  ~/.cache/medalign/world/seed-0-diseases-300-v1/
    data_root: ${world_root:0,300}        (a config resolver: medalign.compose registers it)

A run that names the world never has to generate it first: the first one to need it
writes it, atomically (a staging folder renamed into place), so concurrent jobs and a
killed write never leave half a world behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medalign.registry import register
from medalign.world.knowledge import CORPUS_VERSION, GENERATOR_VERSION, MARKER, check_size

__all__ = ["CORPUS_VERSION", "GENERATOR_VERSION", "MARKER", "describe_data", "world_root"]


@register("config_resolver", "world_root")
def world_root(seed: int, diseases: int) -> str:
    """The cached world's folder for `seed` and `diseases`, written if absent."""
    from medalign.models.builders import cache_root
    from medalign.models.cache import build_into_cache
    from medalign.world.render import write_world

    seed, diseases = int(seed), int(diseases)
    check_size(
        diseases, f"model.world.diseases={diseases} (data_root=${{world_root:{seed},{diseases}}})"
    )
    target = cache_root() / "world" / f"seed-{seed}-diseases-{diseases}-v{GENERATOR_VERSION}"

    def build(staging: Path) -> Path:
        write_world(staging, seed, diseases)
        return staging

    return build_into_cache(target, MARKER, build)


def world_source(data_root: str | None) -> dict[str, int] | None:
    """{seed, diseases} when `data_root` is a world medalign wrote, else None: what the
    manifest and every report name as the data source."""
    if not data_root:
        return None
    marker = Path(data_root) / MARKER
    if not marker.is_file():
        return None
    record = json.loads(marker.read_text())
    return {"seed": int(record["seed"]), "diseases": int(record["diseases"])}


def describe_data(cfg: Any) -> str:
    """Where a run's rows come from, in words every report prints: the synthetic world
    (and its seed), a data root, or the bundled examples, plus any dataset that reads
    its own `path` or `hub_id` instead (a run mixing the world and real data says so)."""
    world = world_source(cfg.data_root)
    if world:
        where = (
            f"synthetic world (seed {world['seed']}, {world['diseases']} diseases; "
            "invented facts, not medicine)"
        )
    elif cfg.data_root:
        where = f"data_root={cfg.data_root}"
    else:
        where = "medalign's bundled example data"
    own = sorted(
        f"{name} from {d.hub_id or d.path}"
        for name, d in cfg.datasets.items()
        if d.path or d.hub_id
    )
    return where + (f"; but {', '.join(own)}" if own else "")
