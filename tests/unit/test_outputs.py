from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.errors import MedalignError
from medalign.outputs import REDACTED, RunDir, redact, write_json_atomic


def test_redact_hides_secret_keys_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijkl")
    cleaned = redact(
        {
            "wandb": {"api_key": "k-123456789", "project": "p"},
            "hf_token": "x",
            "password": "hunter22",
            "note": "token is hf_abcdefghijkl",
            "max_new_tokens": 5,
            "pad_token": None,
        }
    )
    assert cleaned["wandb"] == {"api_key": REDACTED, "project": "p"}
    assert cleaned["hf_token"] == REDACTED and cleaned["password"] == REDACTED
    assert cleaned["note"] == f"token is {REDACTED}"
    assert cleaned["max_new_tokens"] == 5 and cleaned["pad_token"] is None


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_run_dir_refuses_to_overwrite_a_run(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run", "pubmedqa", {"seed": 1})
    run.finish("done")
    before = (tmp_path / "run" / "manifest.json").read_text()
    with pytest.raises(MedalignError, match="already holds a run"):
        RunDir.create(tmp_path / "run", "pubmedqa", {"seed": 2})
    assert (tmp_path / "run" / "manifest.json").read_text() == before
    manifest = json.loads(before)
    assert manifest["stages"][0]["status"] == "done"
    assert "medalign_version" in manifest and "git_commit" in manifest


def test_redaction_keeps_medalign_s_own_error_about_a_secret_named_key() -> None:
    """Regression (issue 24, defect 8): `+logger.api_key=...` was answered "config
    logger.api_key: *** key 'api_key'": the word "unknown" was taken for the secret."""
    from medalign.outputs import redact_text

    message = "config logger.api_key: unknown key 'api_key'. Valid keys of 'logger': entity"
    assert redact_text(message) == message
    assert redact_text("logger.api_key=abc123def") == "logger.api_key=***"
    assert redact_text("api_key: abc123def") == "api_key: ***"
