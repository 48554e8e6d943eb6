"""A stage kind from a plugin package, written into a temporary folder as a user would
write one outside medalign (one module, one YAML, the entry points `pip install`
writes), is `stage=<kind>`, is listed by `--help`, has its own `stage.*` keys and
start-up check, runs alone, and joins `curriculum.order` where it continues the adapter
of the stage before it (issue #34). Each run is a fresh interpreter with the folder on
sys.path, as it would be once installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

MODULE = '''
"""A medalign plugin: stage kind `zorb_probe` scores `stage.text` under the model a
stage starts from (the base, or the adapter the curriculum hands on)."""
from dataclasses import dataclass
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError
from medalign.outputs import write_json_atomic
from medalign.stages.spec import StageInputs, StageSpec, register_stage


@dataclass
class ProbeStageConfig:
    kind: str
    name: str
    text: str


def check_probe(cfg: RunConfig) -> list[str]:
    words = cfg.stage.text.split()
    if not words:
        raise MedalignError("config stage.text: empty; give the sentence to score")
    return words


def run_probe(cfg: RunConfig, inputs: StageInputs) -> dict[str, Any]:
    import torch

    from medalign.models.inference import load_for_inference

    model, tokenizer, described = load_for_inference(cfg, inputs.start)
    ids = tokenizer(cfg.stage.text, return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    start = inputs.start.record() if inputs.start is not None else None
    write_json_atomic(inputs.path / "probe.json", {"model": described, "start": start})
    metrics = {
        "probe/mean_logprob": -loss,
        "probe/from_adapter": float(bool(inputs.start and inputs.start.adapter)),
        "probe/words_checked": float(len(inputs.checked)),
    }
    inputs.record.update(model=described, metrics=metrics)  # the curriculum copies these
    return metrics


SPEC = register_stage(
    StageSpec(
        kind="zorb_probe", schema=ProbeStageConfig, run=run_probe, check=check_probe,
        curriculum="step",
    )
)
'''
STAGE_YAML = """# Score a sentence under the starting model (the zorb plugin's own stage).
kind: zorb_probe
name: zorb_probe
text: The zorb heart has five chambers.
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed plugin: its package (module + conf/stage/<kind>.yaml) and the
    dist-info whose entry points connect it."""
    root = tmp_path_factory.mktemp("site")
    package = root / "medalign_probe"
    (package / "conf" / "stage").mkdir(parents=True)
    (package / "__init__.py").write_text(MODULE)
    (package / "conf" / "__init__.py").write_text("")
    (package / "conf" / "stage" / "zorb_probe.yaml").write_text(STAGE_YAML)
    info = root / "medalign_probe-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: medalign-probe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[medalign.plugins]\nprobe = medalign_probe\n\n"
        "[medalign.conf]\nprobe = medalign_probe.conf\n"
    )
    return root


def _medalign(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medalign", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_plugin_kind_is_listed_and_its_check_refuses_a_bad_key(site: Path) -> None:
    shown = _medalign(site, "--help")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "zorb_probe" in shown.stdout  # stage=zorb_probe among the stage options
    refused = _medalign(site, "stage=zorb_probe", "stage.text=' '", "logger=none")
    assert refused.returncode != 0
    assert "config stage.text: empty" in refused.stderr and "Traceback" not in refused.stderr
    typo = _medalign(site, "stage=zorb_probe", "stage.txet=hello")
    assert "stage.txet" in typo.stderr and "Traceback" not in typo.stderr


def test_the_plugin_stage_runs_alone(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe"
    done = _medalign(site, "debug=fast", "stage=zorb_probe", f"hydra.run.dir={out}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    stage = json.loads((out / "manifest.json").read_text())["stages"][0]
    assert stage["status"] == "done" and stage["name"] == "zorb_probe"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["probe/from_adapter"] == 0.0  # the base model: no init_from
    assert metrics["probe/words_checked"] == 6.0  # the check's result reached the run
    assert metrics["probe/mean_logprob"] < 0
    assert yaml.safe_load((out / "config.yaml").read_text())["stage"]["kind"] == "zorb_probe"


@pytest.mark.slow  # an SFT stage, its evaluation, then the probe (about a minute)
def test_the_plugin_stage_continues_an_sft_stage_in_a_curriculum(
    site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "curriculum"
    done = _medalign(
        site,
        "debug=fast",
        "experiment=curriculum",
        "curriculum.order=[pubmedqa,zorb_probe]",
        "curriculum.eval_before=false",
        "eval.datasets=[pubmedqa]",
        "eval.limit=4",
        "eval.bootstrap=0",
        "dataset.limit=8",
        f"hydra.run.dir={out}",
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(s["name"], s["status"]) for s in manifest["stages"]] == [
        ("pubmedqa", "done"),
        ("zorb_probe", "done"),
    ]
    probe = manifest["stages"][1]
    assert probe["metrics"]["probe/from_adapter"] == 1.0
    started = json.loads((out / "1-zorb_probe" / "probe.json").read_text())["start"]
    assert started["adapter"] == manifest["stages"][0]["adapter"]  # the SFT stage's
    recorded = yaml.safe_load((out / "1-zorb_probe" / "config.yaml").read_text())
    assert recorded["init_from"] == f"{out}:pubmedqa"
