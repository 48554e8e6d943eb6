"""python -m medalign.world <out dir> [--seed N] [--diseases N]: write the synthetic world.

`<out dir>` must be new or empty: the world is written into a staging folder beside it and
renamed into place, so a user's files are never overwritten and a failed write (a full
disk, Ctrl-C) leaves nothing behind. A folder that already holds this very world (same
seed, size and generator version) is left as it is.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
from pathlib import Path

from medalign.errors import MedalignError
from medalign.world.knowledge import GENERATOR_VERSION, MARKER, check_size


def write_new_world(out: Path, seed: int, diseases: int) -> dict[str, int] | None:
    """Write the world into `out` (new or empty) atomically; the row counts per file, or
    None when `out` already holds this world. MedalignError for anything else in the way."""
    from medalign.world.render import write_world

    check_size(diseases, f"--diseases {diseases}")
    if out.exists() and not out.is_dir():
        raise MedalignError(f"{out} is a file, not a folder: name a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        if _holds_world(out, seed, diseases):
            return None
        held = sorted(p.name for p in out.iterdir())
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        raise MedalignError(
            f"{out} is not empty (it holds {shown}): the world is written only into a "
            "new or empty folder, so nothing there is overwritten; name another folder"
        )
    # the staging folder's name is chosen before it is made, and made inside the `try` whose
    # `finally` removes it: a SIGTERM landing just after it is made leaves nothing either
    # (with mkdtemp the folder existed a moment before its name was known to the cleanup)
    staging = out.parent / f".{out.name}-{secrets.token_hex(6)}"
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir()
        except OSError as exc:
            raise MedalignError(f"cannot write the world under {out.parent}: {exc}") from None
        counts = write_world(staging, seed, diseases)
        staging.rename(out)  # onto a missing or still-empty folder only
    except OSError as exc:
        raise MedalignError(f"writing the world to {out} failed, nothing kept: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _holds_world(out: Path, seed: int, diseases: int) -> bool:
    try:
        record = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and [
        record.get("seed"),
        record.get("diseases"),
        record.get("version"),
    ] == [seed, diseases, GENERATOR_VERSION]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medalign.world", description=__doc__)
    parser.add_argument("out", type=Path, help="the data root to write (data_root=<out>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--diseases", type=int, default=300)
    args = parser.parse_args(argv)
    from medalign.preempt import install

    install()  # SIGTERM is a KeyboardInterrupt here: the staging folder is removed
    try:
        counts = write_new_world(args.out, args.seed, args.diseases)
    except MedalignError as exc:
        print(f"python -m medalign.world: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        from medalign.preempt import EXIT_STATUS, Preempted

        print("python -m medalign.world: interrupted, nothing written", file=sys.stderr)
        sys.exit(EXIT_STATUS if isinstance(exc, Preempted) else 130)
    if counts is None:
        print(f"{args.out} already holds this world (seed {args.seed}, {args.diseases} diseases)")
        return
    width = max(len(k) for k in counts)
    for rel, rows in counts.items():
        print(f"{rel:<{width}}  {rows:>6}")
    print(f"world (seed {args.seed}) written to {args.out}; use data_root={args.out}")


if __name__ == "__main__":
    main()
