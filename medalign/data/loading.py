"""`dataset.*` -> normalized records, from a local file, the bundled example, or the hub.

Loaders are registered per format (`@register("loader", "pubmedqa")`); this module
resolves where the rows come from, checks the file exists, applies `limit`, and
reports skipped rows, so each loader only knows its own format.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from medalign.config import DatasetConfig
from medalign.data.records import BadRows, LoadedData, QARecord
from medalign.errors import MedalignError
from medalign.registry import get

log = logging.getLogger(__name__)
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


class Loader(Protocol):
    example_file: str

    def read_file(self, path: Path) -> list[tuple[str, dict[str, Any]]]: ...

    def hub_rows(self, rows: Any) -> list[tuple[str, dict[str, Any]]]: ...

    def to_record(self, key: str, row: dict[str, Any], bad: BadRows) -> QARecord | None: ...


def load_records(cfg: DatasetConfig) -> LoadedData:
    """Read, validate and normalize the rows `cfg` names."""
    loader: Loader = get("loader", cfg.format)
    if cfg.hub_id:
        source = f"hub:{cfg.hub_id}" + (f"/{cfg.hub_config}" if cfg.hub_config else "")
        rows = loader.hub_rows(_load_hub(cfg))
    else:
        path = Path(cfg.path).expanduser() if cfg.path else EXAMPLES_DIR / loader.example_file
        if not path.is_file():
            raise MedalignError(f"dataset {cfg.name!r}: file not found: {path} (dataset.path)")
        source = str(path)
        rows = loader.read_file(path)
    bad = BadRows(source, cfg.on_bad_row)
    records = [r for key, row in rows if (r := loader.to_record(key, row, bad)) is not None]
    if cfg.limit is not None:
        records = records[: cfg.limit]
    if not records:
        raise MedalignError(f"dataset {cfg.name!r}: no usable rows in {source}")
    skipped = dict(bad.counts)
    if skipped:
        log.warning("%s: skipped %d bad rows: %s", source, sum(skipped.values()), skipped)
    log.info("%s: %d records from %s", cfg.name, len(records), source)
    return LoadedData(records=records, source=source, skipped=skipped)


def _load_hub(cfg: DatasetConfig) -> Any:
    import datasets

    try:
        return datasets.load_dataset(cfg.hub_id, cfg.hub_config, split=cfg.split)
    except Exception as exc:  # the hub raises many types; all mean "not reachable/found"
        raise MedalignError(
            f"dataset {cfg.name!r}: cannot load hub dataset {cfg.hub_id!r} "
            f"(config {cfg.hub_config!r}, split {cfg.split!r}): {exc}"
        ) from None
