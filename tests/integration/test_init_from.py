"""One `init_from`: eval, export and RL load exactly the model a run produced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medalign.config import validate
from medalign.errors import MedalignError
from medalign.models.init_from import load_model, resolve_init_from
from medalign.run import run
from tests.conftest import compose

SMALL = [
    "experiment=curriculum",
    "logger=none",
    "curriculum.order=[pubmedqa,rl]",
    "curriculum.eval_before=false",
    "eval.datasets=[medqa]",
    "eval.limit=4",
    "eval.bootstrap=0",
    "dataset.limit=8",
    "rl.limit=4",
    "trainer.max_steps=2",
    "trainer.save_steps=0",
    "reward.weights={correctness: 1.0, format: 0.2, helpfulness: 0, safety: 0}",
]


@pytest.fixture(scope="module")
def curriculum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("init_from") / "run"
    run(compose(*SMALL), out, overrides=SMALL)
    return out


def _logits(model, tokenizer):
    import torch

    ids = tokenizer("Question: Is it safe?\nAnswer:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits[0, -1]


def test_eval_of_a_curriculum_reproduces_its_final_row(curriculum: Path, tmp_path: Path) -> None:
    """Issue 12 item 2: the curriculum's RL stage is the merged SFT model + the RL adapter,
    not the raw base + the RL adapter."""
    table = json.loads((curriculum / "manifest.json").read_text())["results"]
    over = ["stage=eval", "logger=none", "eval.datasets=[medqa]", "eval.limit=4"]
    metrics = run(compose(*over, f"init_from={curriculum}"), tmp_path / "eval")
    assert metrics["eval/medqa/acc"] == table["rl"]["medqa"]
    point = resolve_init_from(str(curriculum))
    assert point.stage == "rl" and Path(point.base).parent == curriculum / "merged"
    assert point.base == str(curriculum / "merged" / "0-pubmedqa")  # merged once (issue 25)
    assert not list(curriculum.glob("*/sft_merged"))


def test_every_stage_of_a_curriculum_reads_one_merged_copy(tmp_path: Path, monkeypatch) -> None:
    """Issue 25: the reward models and RL start from the same merged SFT model, written
    once per curriculum, not once per stage (about 16 GB each at 8B)."""
    import medalign.models.merge as merge
    from medalign.config import validate
    from medalign.models.init_from import StartingPoint, sft_base
    from tests.run_fixtures import save_adapter, tiny_dir

    cur = tmp_path / "cur"
    save_adapter(tiny_dir(), cur / "1-medqa" / "adapter")
    (cur / "manifest.json").write_text(json.dumps({"kind": "curriculum", "stages": []}))
    point = StartingPoint(spec="x", adapter=str(cur / "1-medqa" / "adapter"), base=tiny_dir())
    calls = []
    real = merge.merge_adapter
    monkeypatch.setattr(merge, "merge_adapter", lambda *a, **k: calls.append(a) or real(*a, **k))
    cfg = validate(compose("logger=none"))
    paths = {
        sft_base(cfg, type("Run", (), {"path": cur / name})(), point)
        for name in ("2-reward", "3-rl")
    }
    assert paths == {str(cur / "merged" / "1-medqa")} and len(calls) == 1


def test_eval_export_and_rl_start_from_the_same_model(curriculum: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from medalign.models.init_from import sft_base
    from medalign.outputs import RunDir

    spec = f"{curriculum}:pubmedqa"
    cfg = validate(compose("stage=eval", "logger=none", f"init_from={spec}"))
    point = resolve_init_from(spec)
    model, tokenizer, _ = load_model(cfg, point)
    evaluated = _logits(model, tokenizer)

    run(compose("stage=export", "logger=none", f"init_from={spec}"), tmp_path / "export")
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "export" / "model")
    torch.testing.assert_close(_logits(exported, tokenizer), evaluated, atol=1e-4, rtol=1e-4)

    (tmp_path / "rl").mkdir()
    merged = sft_base(cfg, RunDir(tmp_path / "rl"), point)
    rl_start = AutoModelForCausalLM.from_pretrained(merged)
    torch.testing.assert_close(_logits(rl_start, tokenizer), evaluated, atol=1e-4, rtol=1e-4)
    base, _, _ = load_model(cfg, None)
    assert not torch.allclose(_logits(base, tokenizer), evaluated, atol=1e-6)  # it trained


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (":medqa", "has no stage 'medqa'"),
        ("/nowhere", "no such directory"),
    ],
)
def test_init_from_that_resolves_to_nothing_is_a_clear_error(
    curriculum: Path, suffix: str, message: str
) -> None:
    with pytest.raises(MedalignError, match=message):
        resolve_init_from(f"{curriculum}{suffix}")


def test_unfinished_stage_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"kind": "stage", "stages": [{"name": "medqa", "status": "running"}]})
    )
    with pytest.raises(MedalignError, match="stage 'medqa' of .* is running, not done"):
        resolve_init_from(f"{tmp_path}:medqa")
    with pytest.raises(MedalignError, match="no finished stage with a model"):
        resolve_init_from(str(tmp_path))


def test_export_of_a_merged_stage_reuses_the_curriculum_s_copy(
    curriculum: Path, tmp_path: Path, caplog
) -> None:
    import hashlib
    import logging

    with caplog.at_level(logging.INFO):
        run(compose("stage=export", "logger=none", f"init_from={curriculum}:pubmedqa"), tmp_path)
    assert "reusing the curriculum's merged model" in caplog.text
    shared = curriculum / "merged" / "0-pubmedqa" / "model.safetensors"
    exported = tmp_path / "model" / "model.safetensors"
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (shared, exported)]
    assert digest[0] == digest[1]


def test_init_from_is_resolved_once_and_the_curriculum_hands_it_on_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23: `init_from` is resolved once per stage (medalign.run, before the run
    directory is claimed), and a curriculum hands the next stage the starting point it
    holds instead of reading back the manifest it has just written."""
    import medalign.models.init_from as init_from

    calls: list[str | None] = []
    real = init_from.resolve_init_from

    def counted(spec: str | None):
        calls.append(spec)
        return real(spec)

    def no_manifest_reads(*_args, **_kwargs):
        raise AssertionError("the curriculum read a stage back through its manifest")

    monkeypatch.setattr(init_from, "resolve_init_from", counted)
    monkeypatch.setattr(init_from, "_from_run", no_manifest_reads)
    over = [o for o in SMALL if not o.startswith("curriculum.order")]
    order = ["curriculum.order=[pubmedqa,medmcqa]", "trainer.max_steps=1"]
    out = tmp_path / "run"
    run(compose(*over, *order), out, overrides=[*over, *order])
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert [s["status"] for s in stages] == ["done", "done"]
    assert calls == [None]  # pubmedqa resolved its own (none); medmcqa was handed its start
    recorded = (out / "1-medmcqa" / "config.yaml").read_text()
    assert f"init_from: {out}:pubmedqa" in recorded  # the record of where it started
    with pytest.raises(MedalignError, match="init_from=nowhere: no such directory"):
        run(compose("stage=eval", "logger=none", "init_from=nowhere"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # refused before anything was written
