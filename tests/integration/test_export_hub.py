"""A publishable export: the staged upload folder, the model card's hub metadata, and
push_to_hub refusing cleanly (one line, nothing uploaded) without a repo, network or token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medalign.errors import MedalignError
from medalign.run import run
from medalign.stages.model_card import model_card
from tests.conftest import REPO, compose
from tests.run_fixtures import make_curriculum


def _card_parts(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, _, body = card[4:].partition("\n---\n")
    return yaml.safe_load(head), body


def _manifest_and_configs(run_dir: Path) -> tuple[dict, dict]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    configs = {
        s["name"]: yaml.safe_load((Path(s["dir"]) / "config.yaml").read_text())
        for s in manifest["stages"]
    }
    return manifest, configs


def test_card_metadata_parses_and_holds_the_hub_keys(tmp_path: Path) -> None:
    source = make_curriculum(tmp_path, adapters=False, base_id="BioMistral/BioMistral-7B")
    manifest, configs = _manifest_and_configs(source)
    rl = {
        "name": "rl",
        "status": "done",
        "adapter": "/x/rl/adapter",
        "metrics": {"eval/medqa/acc": 0.36, "eval/radqa/f1": 0.2, "train/loss": 0.1},
    }
    manifest["stages"].append(rl)
    configs["rl"] = {
        "model": configs["medqa"]["model"],
        "stage": {"kind": "rl", "name": "rl"},
        "rl": {"algorithm": "grpo", "learning_rate": 5e-4, "max_steps": 20},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05},
    }
    card = model_card(
        manifest, rl, configs, source_name=source.name, repo_id="me/med-7b", license="apache-2.0"
    )
    meta, body = _card_parts(card)
    assert meta["base_model"] == "BioMistral/BioMistral-7B"
    assert meta["license"] == "apache-2.0" and "medalign" in meta["tags"] and "rl" in meta["tags"]
    # the stages read local files: no hub dataset is claimed (regression: the card named
    # hub datasets for a model trained on the bundled example files)
    assert "datasets" not in meta or meta["datasets"] == []
    (index,) = meta["model-index"]
    assert index["name"] == "med-7b"
    scores = {
        (r["dataset"]["name"], m["name"]): m["value"]
        for r in index["results"]
        for m in r["metrics"]
    }
    assert scores == {("medqa", "acc"): 0.36, ("radqa", "f1"): 0.2}
    # each training stage's own hyper-parameters, from its own recorded config
    assert "| pubmedqa | sft | 0.003 | 60 | 8 | 1024 |" in body
    assert "| medqa | sft | 0.001 | 40 | 4 | 1024 |" in body
    assert "| rl | rl (grpo) | 0.0005 | 20 |" in body
    assert "| pubmedqa | pubmedqa | train.json | 16 | f1 |" in body  # no local path
    assert "None" not in body and "/data/" not in body
    assert 'MODEL = "me/med-7b"' in body and "AutoModelForCausalLM.from_pretrained(MODEL" in body


def test_card_never_names_a_cache_path_as_base_model(tmp_path: Path) -> None:
    source = make_curriculum(tmp_path, adapters=False, base_id="/home/me/.cache/hf/llama")
    manifest, configs = _manifest_and_configs(source)
    meta, body = _card_parts(model_card(manifest, manifest["stages"][-1], configs, source_name="r"))
    assert "base_model" not in meta and meta["license"] == "other"
    assert meta["datasets"] == []


def test_card_claims_only_the_hub_data_it_read_and_results_carry_split_and_n(
    tmp_path: Path,
) -> None:
    source = make_curriculum(tmp_path, adapters=False)
    manifest, configs = _manifest_and_configs(source)
    manifest["stages"][1]["data"]["source"] = ["hub:qiaojin/PubMedQA/pqa_labeled"]
    last = manifest["stages"][-1]
    eval_dir = Path(last["dir"]) / "eval"
    eval_dir.mkdir(parents=True)
    (eval_dir / "results.json").write_text(
        json.dumps(
            {
                "medqa": {"n": 8, "split": "test", "source": "/x/medqa/test.jsonl"},
                "pubmedqa": {"n": 10, "split": "test", "source": "hub:qiaojin/PubMedQA"},
            }
        )
    )
    last["metrics"] = {"eval/medqa/acc": 0.25, "eval/pubmedqa/acc": 0.4}
    meta, body = _card_parts(model_card(manifest, last, configs, source_name="r"))
    assert meta["datasets"] == ["qiaojin/PubMedQA"]  # read from the hub; medqa was a file
    datasets = {r["dataset"]["name"]: r["dataset"] for r in meta["model-index"][0]["results"]}
    assert datasets["medqa"] == {
        "name": "medqa",
        "type": "medqa",
        "split": "test",
        "args": {"n": 8, "source": "test.jsonl"},
    }
    assert datasets["pubmedqa"]["type"] == "qiaojin/PubMedQA"


def _run_snippet(card: str, folder: Path) -> str:
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('MODEL = "./model"', f'MODEL = "{folder}"')
    code = code.replace("max_new_tokens=128", "max_new_tokens=4")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=os.environ
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("merged", {"model.safetensors", "config.json", "tokenizer.json", "README.md"}),
        ("adapter", {"adapter_model.safetensors", "adapter_config.json", "README.md"}),
    ],
)
def test_dry_run_stages_exactly_the_upload_folder(tmp_path: Path, what: str, expected) -> None:
    source = make_curriculum(tmp_path)
    out = tmp_path / "export"
    run(
        compose(
            "stage=export",
            "logger=none",
            f"init_from={source}",
            f"export.what={what}",
            "export.dry_run=true",
            "export.push_to_hub=true",
            "export.repo_id=me/tiny-med",
        ),
        out,
    )
    folder = out / ("model" if what == "merged" else "adapter")
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    entry = json.loads((out / "manifest.json").read_text())["stages"][0]
    assert set(entry["staged_files"]) == on_disk and expected <= on_disk
    assert entry["source_stage"] == "medqa" and "hub_url" not in entry
    assert not any(p.name.endswith(".partial") for p in out.iterdir())
    meta, _ = _card_parts((folder / "README.md").read_text())
    assert meta["library_name"] == ("peft" if what == "adapter" else "transformers")


@pytest.mark.slow
@pytest.mark.parametrize("what", ["merged", "adapter"])
def test_card_usage_snippet_loads_the_exported_model(tmp_path: Path, what: str) -> None:
    source = make_curriculum(tmp_path)
    out = tmp_path / "export"
    run(compose("stage=export", "logger=none", f"init_from={source}", f"export.what={what}"), out)
    folder = out / ("model" if what == "merged" else "adapter")
    _run_snippet((folder / "README.md").read_text(), folder)


def test_push_without_repo_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MedalignError, match="export.push_to_hub=true needs export.repo_id"):
        run(compose("stage=export", "logger=none", "export.push_to_hub=true"), tmp_path / "x")


def test_push_offline_stops_with_one_line_before_staging(tmp_path: Path) -> None:
    source = make_curriculum(tmp_path)  # init_from resolves (run.py) before the hub check
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    out = tmp_path / "export"
    overrides = ["export.push_to_hub=true", "export.repo_id=me/x"]
    with pytest.raises(MedalignError) as info:
        run(compose("stage=export", "logger=none", f"init_from={source}", *overrides), out)
    assert "HF_HUB_OFFLINE=1" in str(info.value) and "nothing uploaded" in str(info.value)
    assert "\n" not in str(info.value)
    assert not (out / "model").exists() and not (out / "adapter").exists()


def test_push_without_token_stops_before_staging(tmp_path: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    source = make_curriculum(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    out = tmp_path / "export"
    overrides = ["export.push_to_hub=true", "export.repo_id=me/x"]
    with pytest.raises(MedalignError, match="no Hugging Face token"):
        run(compose("stage=export", "logger=none", f"init_from={source}", *overrides), out)
    assert not (out / "model").exists()


def test_adapter_export_refuses_an_adapter_on_a_merged_intermediate(tmp_path: Path) -> None:
    source = make_curriculum(tmp_path, adapters=False)
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["stages"][-1]["base_model"] = str(source / "1-pubmedqa" / "merged")
    manifest["stages"][-1]["adapter"] = str(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    (source / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MedalignError, match="merged inside the run"):
        run(
            compose("stage=export", "logger=none", f"init_from={source}", "export.what=adapter"),
            tmp_path / "export",
        )


@pytest.mark.slow
def test_cli_push_offline_prints_one_error_line(tmp_path: Path) -> None:
    source = make_curriculum(tmp_path)  # init_from resolves (run.py) before the hub check
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "medalign",
            "stage=export",
            "logger=none",
            f"init_from={source}",
            "export.push_to_hub=true",
            "export.repo_id=me/x",
            f"hydra.run.dir={tmp_path / 'export'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("medalign: error: export.push_to_hub")
    assert "Traceback" not in done.stdout + done.stderr


def test_card_shows_a_result_that_could_not_be_counted_as_na(tmp_path: Path) -> None:
    """The default curriculum records RadQA false-confidence as null when no answer to an
    unanswerable question was parseable; exporting it crashed on formatting None."""
    source = make_curriculum(tmp_path, adapters=False)
    manifest, configs = _manifest_and_configs(source)
    manifest["results"]["before"]["radqa false-conf"] = None
    manifest["results"]["medqa"]["radqa false-conf"] = 0.25
    card = model_card(manifest, manifest["stages"][-1], configs, source_name=source.name)
    _, body = _card_parts(card)
    rows = {line.split(" | ")[0]: line for line in body.splitlines() if line.startswith("| ")}
    assert rows["| before"].endswith("| n/a |") and rows["| medqa"].endswith("| 0.250 |")
