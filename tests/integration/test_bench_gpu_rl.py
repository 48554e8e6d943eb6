"""bench/bench_gpu_rl.py: the GPU RL script's dry run (tiny model, CPU) goes end to end
through the same functions the H200 run uses, and the int8 snapshot's summary finds the
allocations live at the peak. About 25 s on 2 cores: marked slow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO))


@pytest.mark.slow
def test_gpu_rl_dry_run_writes_every_row(tmp_path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    import os

    proc = subprocess.run(
        [sys.executable, "bench/bench_plan.py", "--gpu-rl", "--dry-run", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "results.json").read_text())
    rows = {r["row"]: r for r in result["rows"]}
    assert not [r for r in result["rows"] if "error" in r], result["rows"]
    reward = rows["reward model, nf4 + LoRA, checkpointing"]
    assert reward["tokens_per_s"] > 0 and reward["planned_tokens_per_s"] > 0
    for label in ("HF generate, LoRA unmerged", "HF generate, LoRA merged"):
        assert rows[label]["generation_tokens_per_s"] > 0
        assert rows[label]["planned_generation_tokens_per_s"] > 0
    vllm = next(r for name, r in rows.items() if name.startswith("vLLM"))
    assert "skipped" in vllm or vllm["generation_tokens_per_s"] > 0
    assert "| HF generate, LoRA merged |" in (tmp_path / "RESULTS.md").read_text()


def test_peak_allocations_replays_the_trace() -> None:
    """A made-up trace: a (1 GiB) and b (2 GiB) live together at the peak; c comes after
    a is freed and never meets b's peak."""
    from bench.bench_int8_snapshot import peak_allocations

    gib = 1024**3

    def frame(name: str) -> list[dict]:
        return [
            {"filename": "/x/site-packages/torch/nn/modules/module.py", "line": 1, "name": "f"},
            {"filename": f"/x/site-packages/bitsandbytes/{name}.py", "line": 7, "name": name},
        ]

    trace = [
        {"action": "alloc", "addr": 1, "size": gib, "frames": frame("a")},
        {"action": "alloc", "addr": 2, "size": 2 * gib, "frames": frame("b")},
        {"action": "free_requested", "addr": 1, "size": gib, "frames": []},
        {"action": "free_completed", "addr": 1, "size": gib, "frames": []},
        {"action": "alloc", "addr": 3, "size": gib // 2, "frames": frame("c")},
    ]
    summary = peak_allocations({"device_traces": [trace]})
    assert summary["peak_gib"] == 3.0
    frames = {f["frame"]: f["gib"] for f in summary["by_frame"]}
    assert frames == {"bitsandbytes/b.py:7 b": 2.0, "bitsandbytes/a.py:7 a": 1.0}


@pytest.mark.slow
def test_gpu_all_dry_run_runs_every_piece(tmp_path) -> None:
    """The one prepared GPU command (`--gpu-all`), dry: the RL rows, the SFT variants and
    the int8 step, each piece in its own process; Liger is skipped without CUDA."""
    import os

    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "bench/bench_plan.py", "--gpu-all", "--dry-run", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    pieces = json.loads((tmp_path / "gpu_all.json").read_text())["pieces"]
    assert [p["piece"] for p in pieces] == ["--gpu-rl", "--gpu-sft", "--int8-snapshot"]
    assert [p["status"] for p in pieces] == ["ok"] * 3, pieces
    rows = {r["row"]: r for r in json.loads((tmp_path / "results.json").read_text())["rows"]}
    merged = rows["HF generate, LoRA merged"]
    assert merged["fraction_of_bandwidth_limit"] > 0
    assert merged["bandwidth_limit_tokens_per_s"] > merged["planned_generation_tokens_per_s"]
    sft = json.loads((tmp_path / "sft.json").read_text())
    by_name = {r["row"]: r for r in sft["rows"]}
    for name in ("SFT plain TRL (padded)", "SFT padding-free"):
        assert by_name[name]["tokens_per_s"] > 0 and by_name[name]["first_loss"] > 0, by_name
    assert by_name["SFT padding-free"]["loss_matches_plain"] is True  # same sequences
    assert "skipped" in by_name["SFT Liger"] and "skipped" in by_name["SFT Liger + padding-free"]
    assert sft["fastest_loss_preserving"] in ("SFT plain TRL (padded)", "SFT padding-free")
    assert json.loads((tmp_path / "int8_snapshot.json").read_text())["shape"]


def test_gpu_all_cuts_a_piece_and_its_children_at_the_limit(tmp_path, monkeypatch) -> None:
    """A piece over its limit is killed with the processes it started (a vLLM child would
    otherwise keep the GPU's memory from the next piece); the next piece still runs."""
    import time
    from pathlib import Path

    from bench import bench_gpu_rl

    fake = tmp_path / "repo" / "bench"
    fake.mkdir(parents=True)
    (fake / "bench_plan.py").write_text(
        "import subprocess, sys, time\n"
        "if sys.argv[1] == '--slow':\n"
        "    child = subprocess.Popen(['sleep', '60'])\n"
        f"    open({str(tmp_path / 'child.pid')!r}, 'w').write(str(child.pid))\n"
        "    time.sleep(60)\n"
    )
    monkeypatch.setattr(bench_gpu_rl, "REPO", tmp_path / "repo")
    monkeypatch.setattr(bench_gpu_rl, "GPU_ALL", (("--slow", 2), ("--quick", 30)))
    start = time.perf_counter()
    result = bench_gpu_rl.gpu_all(tmp_path / "out", dry_run=False)
    assert time.perf_counter() - start < 20
    assert [p["status"] for p in result["pieces"]] == ["cut at its 2 s limit", "ok"]
    status = Path(f"/proc/{int((tmp_path / 'child.pid').read_text())}/status")
    time.sleep(0.2)  # the grandchild went with its piece: gone, or a zombie not yet reaped
    assert not status.exists() or "\nState:\tZ" in status.read_text()
