"""A stage's time says when it includes building a cache entry (issue 36: the `before`
row's 590 s included pretraining the world model, and nothing said so)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_a_stage_that_builds_a_cache_entry_records_it_and_the_report_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medalign.compose
    import medalign.run
    from medalign.curriculum import _run_stage
    from medalign.models.cache import build_into_cache
    from medalign.reports.html import _stages_table

    def build(staging: Path) -> Path:
        (staging / "tokenizer.json").write_text("{}")
        return staging

    def fake_run(cfg: object, stage_dir: Path, start: object = None) -> None:
        build_into_cache(tmp_path / "cache" / "world-abc", "tokenizer.json", build)
        stage_dir.mkdir(parents=True, exist_ok=True)
        (stage_dir / "manifest.json").write_text(json.dumps({"stages": [{"metrics": {}}]}))

    monkeypatch.setattr(medalign.compose, "compose", lambda overrides: None)
    monkeypatch.setattr(medalign.run, "run", fake_run)
    (tmp_path / "cache").mkdir()
    (tmp_path / "run").mkdir()
    entries = []
    for name in ("before", "pubmedqa"):  # the second finds the entry built
        entry = {"name": name, "dir": str(tmp_path / f"run/{name}")}
        manifest = {"stages": [entry]}
        _run_stage(manifest, tmp_path / "run", entry, [])
        entries.append(entry)
    before, later = entries
    assert [b["entry"] for b in before["builds"]] == ["world-abc"]
    assert before["builds"][0]["seconds"] <= before["seconds"]
    assert "builds" not in later
    table = _stages_table(entries, tmp_path / "run")
    assert "includes building world-abc" in table
    assert table.count("includes building") == 1
