"""The verl job's own environment: requirements.txt, check_env.py and README.md.

    from medalign.rl_engines.verl_env import write_env
    write_env(out, "0.9.1")      # into the job folder, beside run.sh

Why: verl 0.9.1 requires `transformers>=5.5.3,<5.11` (its `[vllm]` extra pins torch
2.11.0, vllm 0.24.0 and transformers 5.9.0), which neither of medalign's environments
holds (transformers 5.24.0 on the CPU, 5.17.0 under constraints-gpu.txt). As verl's and
OpenRLHF's own recipes do, the job runs in a separate environment pinned for the engine
it is handed to; the job folder says which and how to create it, and run.sh runs
check_env.py first, which stops in one line when that Python has no verl or a
transformers outside verl's range. medalign_reward.py needs nothing more there: it
imports medalign's reward functions (standard library only) from MEDALIGN_ROOT.

The versions are verl's wheel METADATA (Requires-Dist), recorded per verl release;
tests/unit/test_verl_env.py checks them (and resolves requirements.txt with
`pip install --dry-run` where the package index answers).
"""

from __future__ import annotations

from pathlib import Path

# verl release -> what its wheel declares (verl-<v>.dist-info/METADATA, December 2026)
VERL_ENVIRONMENTS: dict[str, dict] = {
    "0.9.1": {
        "python": ">=3.10,<3.13",  # Requires-Python
        "transformers": ">=5.5.3,<5.11,!=5.6.0",  # Requires-Dist (base install)
        # its [vllm] extra, the rollout engine medalign's command asks for
        # (actor_rollout_ref.rollout.name=vllm)
        "pins": {
            "torch": "2.11.0",
            "torchvision": "0.26.0",
            "torchaudio": "2.11.0",
            "vllm": "0.24.0",
            "transformers": "5.9.0",
        },
    },
}

CHECK_ENV = '''"""run.sh runs this first, with the Python it hands the job to ($PYTHON): one line
and exit 1 when that Python cannot run this job (no verl, or a transformers outside the
range verl {verl} requires); else it prints the installed verl version. Written by
medalign (rl_engines/verl_env.py); standard library only."""

import sys
from importlib import metadata

TRANSFORMERS = {transformers!r}  # verl {verl}'s Requires-Dist
HOW = "create verl's environment (README.md, requirements.txt) and set PYTHON in run.sh"


def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def release(text):
    """(5, 9, 0) of "5.9.0", "5.9.0rc1" or "5.9.0+cu130": the leading release numbers."""
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = ""
        for c in piece:
            if not c.isdigit():
                break
            digits += c
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:  # "0rc1": the release ends here
            break
    return tuple(parts)


def allowed(text, spec):
    have = release(text)
    for clause in spec.split(","):
        clause = clause.strip()
        op = clause[: len(clause) - len(clause.lstrip("<>=!~"))]
        want = release(clause[len(op):])
        width = max(len(have), len(want))
        a, b = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        ok = {{"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}}
        if not ok.get(op, False):
            return False
    return True


verl = version("verl")
if verl is None:
    sys.exit(f"no verl in {{sys.executable}}: {{HOW}}")
transformers = version("transformers")
if transformers is None or not allowed(transformers, TRANSFORMERS):
    sys.exit(
        f"{{sys.executable}} has transformers {{transformers}}; verl {verl} needs "
        f"transformers{{TRANSFORMERS}}: {{HOW}}"
    )
print(verl)
'''

README = """# verl job written by medalign: which environment runs it

This folder is a verl job (`bash run.sh`, or `sbatch slurm.sh` on a SLURM cluster). It
runs in **verl's own environment, not medalign's**: verl {verl} requires
`transformers{transformers}` and its vLLM rollout pins torch {torch}, vllm {vllm} and
transformers {pinned_transformers}; medalign's environment has other versions (transformers
5.24.0 on the CPU, 5.17.0 under `constraints-gpu.txt`), so the two cannot share one.

Create it on the machine (or every node) that runs the job: Python {python}, a CUDA
GPU, then

```bash
python3 -m venv verl-env
verl-env/bin/pip install -r requirements.txt
PYTHON=$PWD/verl-env/bin/python bash run.sh
```

(or set `PYTHON=` at the top of `run.sh`). `requirements.txt` is verl {verl} with the
pins of its `[vllm]` extra. Nothing of medalign needs installing there:
`medalign_reward.py` imports medalign's reward functions (standard library only) from
the clone named by `MEDALIGN_ROOT` in `run.sh`.

`run.sh` first runs `check_env.py` with that Python and stops in one line when it has
no verl or a transformers outside verl's range; another verl version is a warning (the
overrides were checked against verl {verl}).
"""


def requirements_text(verl: str) -> str:
    """requirements.txt for verl release `verl`: verl with its [vllm] extra, and the
    extra's pins repeated so a later resolver cannot move them."""
    env = VERL_ENVIRONMENTS[verl]
    pins = "".join(f"{name}=={version}\n" for name, version in env["pins"].items())
    return (
        f"# verl's environment for this job (not medalign's): Python {env['python']}, CUDA.\n"
        "#   python3 -m venv verl-env && verl-env/bin/pip install -r requirements.txt\n"
        f"# verl {verl} and the pins of its [vllm] extra (its wheel's METADATA).\n"
        f"verl[vllm]=={verl}\n{pins}"
    )


def write_env(out: Path, verl: str) -> None:
    """requirements.txt, check_env.py and README.md of verl release `verl` into `out`."""
    env = VERL_ENVIRONMENTS[verl]
    (out / "requirements.txt").write_text(requirements_text(verl))
    (out / "check_env.py").write_text(CHECK_ENV.format(verl=verl, transformers=env["transformers"]))
    pins = env["pins"]
    (out / "README.md").write_text(
        README.format(
            verl=verl,
            transformers=env["transformers"],
            torch=pins["torch"],
            vllm=pins["vllm"],
            pinned_transformers=pins["transformers"],
            python=env["python"],
        )
    )
