"""What the command line checks and says around a run, so nothing is lost or rewritten.

- Before Hydra writes anything: a `hydra.run.dir=` that holds a finished run, another
  run (unless this is a documented resume: `stage.resume_from=...` or `resume=...`), or
  a directory another process works in is refused (`check_run_dir_arg`).
- Hydra saves its record of the run into a per-process folder (`pending_subdir()`),
  redacted at once, moved to `.hydra/` only when the run is accepted (by
  `outputs.RunDir.create` or the curriculum) and removed when it is refused
  (`settle_hydra_record`); `.hydra/` of another run is never rewritten.
- A curriculum resume (`resume=<dir>` or `resume=latest`) runs in the run it resumes:
  its log is appended to that run's `medalign.log` and Hydra's record filed there, so
  no new run directory is left behind (`resume_in_place`).
- Ctrl-C is one line naming the step and the command that resumes (`interrupted_line`).
- A sweep experiment started without `-m` gets a one-line warning (`sweep_warning`).
- `--help` lists only selectable options (`filter_help`).

    python -m medalign stage=medqa hydra.run.dir=runs/x      # refused if runs/x is a run
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from medalign.errors import MedalignError, NothingToResume

_NO_RUN_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--version")
_MULTIRUN_FLAGS = ("-m", "--multirun")


_PREEXISTING: set[str] = set()  # run directories that existed before this process


def pending_subdir() -> str:
    """This process's folder for Hydra's record, until the run is accepted."""
    return f".hydra-pending-{os.getpid()}"


def _last(args: list[str], key: str) -> str | None:
    values = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith(f"{key}=")]
    return values[-1] if values else None


def runs_a_job(argv: list[str]) -> bool:
    """Whether the command line runs a job (not --help, --cfg, ...)."""
    return not any(a in _NO_RUN_FLAGS or a.startswith("--cfg=") for a in argv[1:])


def resume_in_place(argv: list[str]) -> list[str]:
    """`argv` with a curriculum resume pointed at the run it resumes: `resume=` and
    `hydra.run.dir=` both name that run (absolute; `latest` = the newest curriculum under
    the runs root), so Hydra appends the log there and creates no new directory."""
    args = argv[1:]
    resume = _last(args, "resume")
    if resume in (None, "null", "") or not runs_a_job(argv):
        return argv
    if any(a in _MULTIRUN_FLAGS for a in args):
        return argv
    from medalign.curriculum import curriculum_status, resolve_resume

    given = _last(args, "hydra.run.dir")
    root = Path(given).parent.parent if given else Path("runs")  # the default's runs root
    target = os.path.abspath(resolve_resume(resume, root / "new" / "run"))
    if curriculum_status(Path(target)) == "done":  # nothing to do: and nothing is touched
        raise NothingToResume(
            f"{target} is complete (status done); nothing to resume. Evaluate or export it "
            f"with init_from={target}, or start a new run"
        )
    from medalign.curriculum import check_replay

    check_replay(Path(target), [a for a in args if "=" in a and not a.startswith("-")])
    if given and os.path.abspath(given) != target:
        print_error(f"medalign: resume: hydra.run.dir={given} ignored; the resume runs in {target}")
    kept = [a for a in argv if not a.lstrip("+").startswith(("hydra.run.dir=", "resume="))]
    return [*kept, f"resume={target}", f"hydra.run.dir={target}"]


def check_run_dir_arg(argv: list[str]) -> None:
    """Refuse, before Hydra writes into it, a `hydra.run.dir` this run may not use."""
    import json

    from medalign.locks import holder
    from medalign.outputs import check_claimable

    args = argv[1:]
    run_dir = _last(args, "hydra.run.dir")
    if not run_dir or not runs_a_job(argv) or any(a in _MULTIRUN_FLAGS for a in args):
        return
    if int(os.environ.get("RANK", "0")) > 0:  # a scratch directory (see cli._rank_args)
        return
    path = Path(run_dir)
    if path.exists():  # not this run's to remove if the run is refused (discard_refused)
        _PREEXISTING.add(str(path.resolve()))
    who = holder(path)
    if who is not None:
        raise MedalignError(f"{path} is in use by {who}; wait for it to end or stop it")
    manifest = path / "manifest.json"
    if not manifest.is_file():
        return
    try:
        recorded = json.loads(manifest.read_text()).get("kind")  # "stage" | "curriculum"
    except (OSError, ValueError):
        recorded = None
    if recorded == "curriculum":
        if _last(args, "resume") in (None, "null"):
            raise MedalignError(
                f"{path} already holds a curriculum run; resume it with resume={path}, "
                "or use a new hydra.run.dir"
            )
        return
    resume = _last(args, "stage.resume_from")
    check_claimable(path, reopen=resume not in (None, "null", ""))


def discard_refused(run_dir: Path, subdir: str | None) -> None:
    """A run refused before it claimed its directory (a config error found inside the
    job) leaves nothing: Hydra's pending record and the log it opened there are removed,
    and the directory with them when nothing else is in it. So does a stage that claimed
    its directory and then failed on bad input before it produced anything (a missing
    data file found by the stage: `discard_unstarted`)."""
    if subdir and subdir.startswith(".hydra-pending-"):
        shutil.rmtree(run_dir / subdir, ignore_errors=True)
    if str(run_dir.resolve()) in _PREEXISTING:
        return  # the user's folder, given as hydra.run.dir: its files stay
    unstarted = unstarted_run(run_dir)
    if not unstarted and ((run_dir / "manifest.json").exists() or (run_dir / ".hydra").exists()):
        return  # a run's directory (a refused resume reopens it): not ours to remove
    _close_logs_in(run_dir)
    with contextlib.suppress(OSError):
        if unstarted:
            shutil.rmtree(run_dir)
        else:
            run_dir.rmdir()  # only if empty
        date = run_dir.parent
        if date.parent.name == "runs" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date.name):
            date.rmdir()  # the default layout's runs/<date>/, if nothing else is in it


# what a run directory holds before its stage has produced anything of its own
BOOKKEEPING = frozenset(
    {".medalign.lock", ".medalign.reserve", ".hydra", "medalign.log", "manifest.json"}
    | {"config.yaml", "wandb"}
)


def unstarted_run(run_dir: Path) -> bool:
    """True for a new (not resumed) stage run that failed and holds nothing but its
    bookkeeping (config, manifest, log, lock, Hydra's record, W&B's files): it failed
    before its first step, and its directory would only be a trap (a `latest` that
    names a run with nothing in it)."""
    import json

    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
        names = {p.name for p in run_dir.iterdir()}
    except (OSError, ValueError):
        return False
    stages = manifest.get("stages") or []
    if manifest.get("kind") != "stage" or len(stages) != 1:
        return False
    stage = stages[0]
    return stage.get("status") == "failed" and "resumed" not in stage and names <= BOOKKEEPING


def _close_logs_in(run_dir: Path) -> None:
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        name = getattr(handler, "baseFilename", None)
        if name and Path(name).parent == run_dir:
            root.removeHandler(handler)
            handler.close()
            Path(name).unlink(missing_ok=True)


def settle_hydra_record(run_dir: Path, subdir: str | None) -> None:
    """After the job: a record the run did not adopt is kept as `.hydra/` only in a fresh
    directory nobody else holds (a run that failed before starting); otherwise removed."""
    from medalign.locks import holder
    from medalign.outputs import adopt_hydra_record

    if not subdir or not (run_dir / subdir).is_dir() or not subdir.startswith(".hydra-pending-"):
        return  # only the record main() asked Hydra for is ever adopted or removed here
    fresh = not (run_dir / ".hydra").exists() and not (run_dir / "manifest.json").exists()
    if fresh and holder(run_dir) is None:
        adopt_hydra_record(run_dir, subdir)
    else:
        shutil.rmtree(run_dir / subdir, ignore_errors=True)


def interrupted_line(
    tb: TracebackType | None,
    kind: str,
    run_dir: Path,
    argv: list[str],
    resume: Any = None,
    step: int | None = None,
    why: str = "interrupted",
) -> str:
    """ "medalign: interrupted at step N; resume with: ..." for a Ctrl-C (or, `why`, a
    SIGTERM) during a run; `step`: where training stopped, when the traceback cannot say."""
    found, phase = _where(tb)
    step = found if step is None else step
    at = f"at step {step}" if step is not None else f"during {phase}"
    from medalign.stages.spec import stage_spec

    kept = _user_args(argv, "hydra.run.dir=", "stage.resume_from=")
    spec = stage_spec(kind or "sft")
    if spec.pipeline is not None:  # a run of runs resumes from its manifest
        kept = [a for a in kept if not a.startswith("resume=")]
        target = resume or run_dir  # `latest` still names the newest curriculum
        how = "resume with: " + _command([*kept, f"resume={target}"])
    elif spec.resumable:  # from its newest complete checkpoint
        how = "resume with: " + _command(
            [*kept, "stage.resume_from=latest", f"hydra.run.dir={run_dir}"]
        )
    else:
        how = f"the stage starts over when run again: {_command(kept)}"
    return f"medalign: {why} {at}; {how}"


def _user_args(argv: list[str], *dropped: str) -> list[str]:
    """The command line's arguments without `dropped` prefixes and what main() added."""
    return [a for a in argv[1:] if not a.startswith((*dropped, "hydra.output_subdir=.hydra-p"))]


def _command(args: list[str]) -> str:
    return " ".join(["python -m medalign", *(shlex.quote(a) for a in args)])


def _where(tb: TracebackType | None) -> tuple[int | None, str]:
    """The trainer's global step if a Trainer was on the stack, and the innermost
    medalign function (the phase)."""
    step, phase = None, "start-up"
    while tb is not None:
        frame = tb.tb_frame
        module = frame.f_globals.get("__name__", "")
        if module.startswith("medalign.") and module != "medalign.preempt":  # not the handler
            phase = f"{frame.f_code.co_name} ({module})"
        owner = frame.f_locals.get("self")
        state = getattr(owner, "state", None)
        if hasattr(owner, "args") and isinstance(getattr(state, "global_step", None), int):
            step = state.global_step
        tb = tb.tb_next
    return step, phase


# torch.save reports a write cut short (ENOSPC) as "[enforce fail at inline_container.cc:N]
# . unexpected pos 576 vs 534", with no errno anywhere in the chain
_TORCH_SHORT_WRITE = re.compile(r"enforce fail at inline_container\.cc:\d+\].*unexpected pos")


def user_error(exc: BaseException) -> BaseException:
    """The MedalignError a config resolver raised (`${world_root:0,3}`), which OmegaConf
    wraps in an InterpolationResolutionError (keeping it only as the context), else `exc`:
    the user's mistake is then one line, not a traceback from inside the resolver."""
    from omegaconf.errors import InterpolationResolutionError

    inner: BaseException | None = exc
    while isinstance(inner, InterpolationResolutionError):
        inner = inner.__cause__ or inner.__context__
    return inner if isinstance(inner, MedalignError) else exc


def disk_full(exc: BaseException, run_dir: Path) -> str | None:
    """ "disk full at <path>" when `exc` (or its cause) is an ENOSPC, else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = Path(exc.filename).parent if exc.filename else run_dir
            return f"disk full at {where}"
        if "No space left on device" in str(exc):  # e.g. SafetensorError, torch's writer
            return f"disk full at {run_dir} ({type(exc).__name__})"
        if _TORCH_SHORT_WRITE.search(str(exc)):  # torch.save's zip writer hit ENOSPC
            return f"disk full at {run_dir} (torch.save)"
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def sweep_warning(hydra_cfg: Any, argv: list[str]) -> str | None:
    """One line when a sweep experiment (hydra.sweeper.params set) runs without `-m`."""
    from omegaconf import OmegaConf

    params = OmegaConf.select(hydra_cfg, "sweeper.params")
    if not params:
        return None
    experiment = OmegaConf.select(hydra_cfg, "runtime.choices.experiment")
    what = f"experiment={experiment}" if experiment else "this config"
    swept = ", ".join(f"{k}: {v}" for k, v in params.items())
    args = _user_args(argv, "hydra.run.dir=")
    return (
        f"medalign: warning: {what} is a sweep ({swept}) but runs as ONE job without -m; "
        f"for the sweep: {_command(['-m', *args])}"
    )


def filter_help(text: str) -> str:
    """Hydra's --help with options named `_x` (bases other configs include) left out."""
    lines = []
    for line in text.splitlines():
        group, sep, options = line.partition(": ")
        if sep and re.fullmatch(r"[\w/]+", group) and re.fullmatch(r"[\w.-]+(, [\w.-]+)*", options):
            kept = [o for o in options.split(", ") if not o.startswith("_")]
            line = f"{group}{sep}{', '.join(kept)}"
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def print_error(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
