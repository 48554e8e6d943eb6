"""`python -m medalign.world <dir>` as an adversarial user runs it (issue 37): a folder it
did not write is never overwritten, a size it cannot satisfy or would take too long to
write is one line naming the limit, and a failed write leaves no partial world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medalign.world.__main__ import main
from medalign.world.knowledge import MARKER, MAX_DISEASES, MIN_DISEASES
from tests.conftest import REPO, tree_digest


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line `main(argv)` printed before exiting 1."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_a_folder_holding_a_users_files_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    (mine / "corpus").mkdir(parents=True)
    (mine / "pubmedqa").mkdir()
    (mine / "corpus" / "textbook.txt").write_text("my own notes\n")
    (mine / "pubmedqa" / "ori_pqal.json").write_text('{"1": {}}')
    (mine / MARKER).write_text('{"mine": true}')
    before = tree_digest(mine)
    err = refused([str(mine)], capsys)
    assert str(mine) in err and "not empty" in err
    assert tree_digest(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging left


def test_a_regular_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    err = refused([str(path)], capsys)
    assert "not a folder" in err
    assert path.read_text() == "keep me"


@pytest.mark.parametrize(
    "argv",
    [
        ["--diseases", "1"],
        ["--diseases", "3"],
        ["--seed", "-1", "--diseases", "4"],
        ["--diseases", "7"],
    ],
)
def test_a_size_below_the_smallest_world_names_the_minimum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    err = refused([str(tmp_path / "w"), *argv], capsys)
    assert f"at least {MIN_DISEASES}" in err
    assert not (tmp_path / "w").exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("n", ["0", "-5"])
def test_zero_or_negative_diseases_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], n: str
) -> None:
    err = refused([str(tmp_path / "w"), "--diseases", n], capsys)
    assert f"--diseases {n}" in err
    assert not list(tmp_path.iterdir())


def test_a_huge_size_is_one_line_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused([str(tmp_path / "w"), "--diseases", "100000000"], capsys)
    assert f"at most {MAX_DISEASES}" in err
    assert not list(tmp_path.iterdir())


def test_the_smallest_size_it_accepts_is_written(tmp_path: Path) -> None:
    main([str(tmp_path / "small"), "--diseases", str(MIN_DISEASES)])
    assert json.loads((tmp_path / "small" / MARKER).read_text())["diseases"] == MIN_DISEASES


def test_the_largest_size_it_accepts_is_drawn(tmp_path: Path) -> None:
    """MAX_DISEASES is where name drawing still finds fresh names quickly (5,760
    one-syllable drug names, two a disease: beyond 2,880 it would never end)."""
    from medalign.world.knowledge import build_world

    assert len(build_world(0, MAX_DISEASES).diseases) == MAX_DISEASES


def test_an_empty_folder_is_written_and_rewriting_the_same_world_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "w"
    out.mkdir()
    main([str(out), "--diseases", "8"])
    first = tree_digest(out)
    main([str(out), "--diseases", "8"])
    assert "already holds" in capsys.readouterr().out
    assert tree_digest(out) == first
    err = refused([str(out), "--diseases", "10"], capsys)  # another world: not overwritten
    assert "not empty" in err and tree_digest(out) == first


def test_a_failed_write_leaves_no_partial_world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import medalign.world.render as render

    def broken(*args: object, **kwargs: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render, "safety_csv", broken)
    err = refused([str(tmp_path / "w")], capsys)
    assert "No space left" in err
    assert not list(tmp_path.iterdir())


def test_the_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "medalign.world", str(tmp_path / "w"), "--diseases", "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr


def test_a_world_size_in_the_config_is_one_line(tmp_path: Path) -> None:
    """experiment=world model.world.diseases=3: the resolver's MedalignError, not an
    InterpolationResolutionError traceback."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "medalign",
            "experiment=world",
            "model.world.diseases=3",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"at least {MIN_DISEASES}" in done.stderr and "model.world.diseases" in done.stderr
    assert not (tmp_path / "run").exists()


def test_the_cached_world_refuses_a_size_it_cannot_satisfy_before_writing(tmp_path: Path) -> None:
    from medalign.errors import MedalignError
    from medalign.world.store import world_root

    with pytest.raises(MedalignError, match="model.world.diseases=3"):
        world_root(0, 3)
    assert not list((Path(os.environ["MEDALIGN_CACHE"]) / "world").glob("*diseases-3-*"))


def test_a_sigterm_while_writing_leaves_nothing(tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "medalign.world", str(tmp_path / "w"), "--diseases", "2000"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not list(tmp_path.iterdir()) and time.time() < deadline:  # the staging folder
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "nothing written" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
