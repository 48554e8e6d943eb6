"""python -m medalign.world <out dir> [--seed N] [--diseases N]: write the synthetic world."""

from __future__ import annotations

import argparse
from pathlib import Path

from medalign.world.render import write_world


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m medalign.world", description=__doc__)
    parser.add_argument("out", type=Path, help="the data root to write (data_root=<out>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--diseases", type=int, default=300)
    args = parser.parse_args()
    counts = write_world(args.out, args.seed, args.diseases)
    width = max(len(k) for k in counts)
    for rel, rows in counts.items():
        print(f"{rel:<{width}}  {rows:>6}")
    print(f"world (seed {args.seed}) written to {args.out}; use data_root={args.out}")


if __name__ == "__main__":
    main()
