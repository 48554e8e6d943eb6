"""The one-line messages of medalign.guard (the CLI tests run them end to end)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from medalign.guard import filter_help, interrupted_line


class _Loop:
    """Has what the frame walk looks for on a transformers Trainer: `args` and `state`."""

    def __init__(self) -> None:
        self.args = SimpleNamespace()
        self.state = SimpleNamespace(global_step=0)

    def train(self) -> None:
        for step in range(1, 10):
            self.state.global_step = step
            if step == 7:
                raise KeyboardInterrupt


def _interrupt():
    try:
        _Loop().train()
    except KeyboardInterrupt as exc:
        return exc.__traceback__


def test_interrupted_line_names_the_step_and_the_resume_command() -> None:
    argv = ["medalign", "stage=medqa", "hydra.run.dir=/r/x", "hydra.output_subdir=.hydra-pending-9"]
    line = interrupted_line(_interrupt(), "sft", Path("/r/x"), argv)
    assert line == (
        "medalign: interrupted at step 7; resume with: python -m medalign stage=medqa "
        "stage.resume_from=latest hydra.run.dir=/r/x"
    )
    curriculum = interrupted_line(
        None, "curriculum", Path("/r/new"), ["m", "resume=latest"], "latest"
    )
    assert curriculum.endswith("python -m medalign resume=latest")
    assert "during start-up" in curriculum


def test_help_filter_drops_base_options_only() -> None:
    text = (
        "Usage:  python -m medalign [a, _b]\ndataset: _base, medqa, pubmedqa\nlora: default, none\n"
    )
    assert filter_help(text) == (
        "Usage:  python -m medalign [a, _b]\ndataset: medqa, pubmedqa\nlora: default, none\n"
    )


def test_disk_full_is_found_in_the_cause_chain_and_in_library_messages() -> None:
    import errno

    from medalign.guard import disk_full

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoint-2/a.pt")
        except OSError as inner:
            raise RuntimeError("save failed") from inner
    except RuntimeError as exc:
        assert disk_full(exc, Path("/runs/x")) == "disk full at /runs/x/checkpoint-2"
    library = RuntimeError("Error while serializing: I/O error: No space left on device")
    assert disk_full(library, Path("/runs/x")) == "disk full at /runs/x (RuntimeError)"
    assert disk_full(ValueError("bad"), Path("/runs/x")) is None


def test_a_curriculum_resume_is_pointed_at_the_run_it_resumes(tmp_path, monkeypatch) -> None:
    import json

    import pytest

    from medalign.errors import MedalignError
    from medalign.guard import resume_in_place

    monkeypatch.chdir(tmp_path)
    with pytest.raises(MedalignError, match="resume=latest: no curriculum run under runs"):
        resume_in_place(["m", "experiment=curriculum", "resume=latest"])
    old, new = tmp_path / "runs/d/1_curriculum", tmp_path / "runs/d/2_curriculum"
    for k, run in enumerate((old, new)):
        run.mkdir(parents=True)
        manifest = {"kind": "curriculum", "overrides": ["experiment=curriculum"]}
        (run / "manifest.json").write_text(json.dumps(manifest))
        os.utime(run / "manifest.json", (k, k))  # `new` is the newest
    (tmp_path / "runs/d/3_medqa").mkdir()
    (tmp_path / "runs/d/3_medqa/manifest.json").write_text(json.dumps({"kind": "stage"}))

    argv = ["m", "experiment=curriculum", "resume=latest", "logger=none"]
    assert resume_in_place(argv) == [
        "m", "experiment=curriculum", "logger=none", f"resume={new}", f"hydra.run.dir={new}"
    ]  # fmt: skip
    given = ["m", "resume=runs/d/1_curriculum", f"hydra.run.dir={tmp_path / 'elsewhere'}"]
    assert resume_in_place(given)[-2:] == [f"resume={old}", f"hydra.run.dir={old}"]
    for untouched in (["m", "stage=medqa"], ["m", "resume=null"], ["m", "-m", "resume=latest"]):
        assert resume_in_place(untouched) == untouched
    with pytest.raises(MedalignError, match="no curriculum manifest.json there"):
        resume_in_place(["m", "resume=runs/d/3_medqa"])


def test_resume_latest_skips_finished_runs_and_a_finished_run_is_never_reopened(
    tmp_path, monkeypatch
) -> None:
    """After a crash, `resume=latest` means the newest *unfinished* curriculum, not a run
    that finished after it; resuming a finished run changes nothing in it."""
    import json

    import pytest

    from medalign.errors import MedalignError, NothingToResume
    from medalign.guard import resume_in_place

    monkeypatch.chdir(tmp_path)
    crashed, finished = tmp_path / "runs/d/1_curriculum", tmp_path / "runs/d/2_curriculum"
    for k, (run, status) in enumerate(((crashed, "running"), (finished, "done"))):
        run.mkdir(parents=True)
        manifest = {"kind": "curriculum", "status": status, "overrides": ["experiment=curriculum"]}
        (run / "manifest.json").write_text(json.dumps(manifest))
        os.utime(run / "manifest.json", (k, k))  # the finished run is the newest
    before = (finished / "manifest.json").read_bytes()
    argv = ["m", "experiment=curriculum", "resume=latest"]
    assert resume_in_place(argv)[-2:] == [f"resume={crashed}", f"hydra.run.dir={crashed}"]
    with pytest.raises(NothingToResume, match="complete"):
        resume_in_place(["m", "experiment=curriculum", f"resume={finished}"])
    assert (finished / "manifest.json").read_bytes() == before
    (crashed / "manifest.json").write_text(json.dumps({"kind": "curriculum", "status": "done"}))
    with pytest.raises(MedalignError, match="no unfinished curriculum"):
        resume_in_place(argv)
