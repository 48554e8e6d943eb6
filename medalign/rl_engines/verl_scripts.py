"""run.sh, slurm.sh and command.txt of a verl job: relocatable, sized, version-stamped.

    from medalign.rl_engines.verl_scripts import write_scripts
    write_scripts(out, command, sizes, variables, verl_version, about)

Every path in them is the job folder's (`${JOB_DIR}`, found by run.sh itself) or one
variable at the top of run.sh: MODEL_PATH, MEDALIGN_ROOT, PYTHON, NNODES, GPUS_PER_NODE,
each overridable from the environment. slurm.sh's `#SBATCH` lines carry the planned
layout; at run time the layout is the allocation's ($SLURM_JOB_NUM_NODES x
$SLURM_GPUS_ON_NODE).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# the variables the verl command refers to, expanded by run.sh
SHELL_VARIABLES = ("JOB_DIR", "MODEL_PATH", "REWARD_MODEL_PATH", "NNODES", "GPUS_PER_NODE")


def clone_default(out: Path, repo: Path) -> str:
    """MEDALIGN_ROOT's default: the clone `repo` relative to job folder `out` when the
    job lies inside it (runs/...), else empty (medalign as installed where verl runs)."""
    try:
        relative = out.resolve().relative_to(repo.resolve())
    except ValueError:
        return ""
    return "${JOB_DIR}" + "/.." * len(relative.parts)


def job_relative(path: str, out: Path, roots: list[Path]) -> str:
    """`path` as `${JOB_DIR}/<relative>` when it lies under one of `roots` (the run
    directory, a curriculum's), else as given (a hub id, or a path of this machine)."""
    target = Path(path)
    if not target.is_absolute():
        return path
    target = target.resolve()
    if any(target.is_relative_to(root.resolve()) for root in roots):
        return "${JOB_DIR}/" + os.path.relpath(target, out.resolve())
    return path


def shell_word(arg: str) -> str:
    """`arg` double-quoted for bash, expanding only ${JOB_DIR}, ${MODEL_PATH}, ${NNODES}
    and ${GPUS_PER_NODE}; every other `$`, quote, backslash or backtick is literal."""
    escaped = re.sub(r'(["\\`$])', r"\\\1", arg)
    for name in SHELL_VARIABLES:
        escaped = escaped.replace(f"\\${{{name}}}", f"${{{name}}}")
    return f'"{escaped}"'


def _body(command: list[str], python: str) -> str:
    words = [" ".join([python, *command[1:3]]), *(shell_word(c) for c in command[3:])]
    return " \\\n    ".join(words)


def write_scripts(
    out: Path,
    command: list[str],
    sizes: Any,
    variables: dict[str, str],
    verl_version: str,
    about: str,
) -> None:
    """command.txt, run.sh and slurm.sh into `out`. `variables`: MODEL_PATH and
    MEDALIGN_ROOT defaults (shell words' contents, may use ${JOB_DIR}); `about`: one line
    naming the algorithm, model and planned GPUs."""
    layout = f"{sizes.nnodes} node(s) x {sizes.gpus_per_node} GPU(s) of {sizes.gpu}"
    (out / "command.txt").write_text(
        f"# The verl command run.sh runs (overrides checked against verl {verl_version}).\n"
        "# ${JOB_DIR} is this folder; MODEL_PATH (REWARD_MODEL_PATH), NNODES, GPUS_PER_NODE\n"
        "# are set at the top of run.sh (and may be set in the environment).\n"
        f"{_body(command, 'python3')}\n"
    )
    notes = "".join(f"#   - {note}\n" for note in sizes.notes)
    rm_doc, rm_line = "", ""
    if "REWARD_MODEL_PATH" in variables:
        rm_doc = "#   REWARD_MODEL_PATH  the reward model verl scores with\n"
        rm_line = f'REWARD_MODEL_PATH="${{REWARD_MODEL_PATH:-{variables["REWARD_MODEL_PATH"]}}}"\n'
    run = f"""#!/usr/bin/env bash
# verl job written by medalign (stage=rl rl.engine=verl): {about}
# Planned layout: {layout}.
#
# On another machine, edit only these variables below (or set them in the environment):
#   MODEL_PATH     the policy verl starts from (a Hugging Face model folder or hub id)
{rm_doc}#   MEDALIGN_ROOT  a medalign clone that medalign_reward.py imports the rewards from;
#                  empty: the medalign installed in verl's Python
#   PYTHON         the Python of verl's environment (README.md, requirements.txt)
#   NNODES, GPUS_PER_NODE  the layout (slurm.sh sets them from the allocation)
# Every other path is this folder's: copy it anywhere (on a cluster, onto a filesystem
# every node sees) and run `bash run.sh [more verl overrides]`.
#
# The overrides were checked against verl {verl_version} (VERL_VERSION); another installed
# version is warned about, and a key it renamed stops verl at start-up.
# Sizes (the run's config and medalign's planner: medalign/rl_engines/verl_sizing.py):
{notes}set -euo pipefail
JOB_DIR="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
MODEL_PATH="${{MODEL_PATH:-{variables["MODEL_PATH"]}}}"
{rm_line}MEDALIGN_ROOT="${{MEDALIGN_ROOT-{variables["MEDALIGN_ROOT"]}}}"
PYTHON="${{PYTHON:-python3}}"
NNODES="${{NNODES:-{sizes.nnodes}}}"
GPUS_PER_NODE="${{GPUS_PER_NODE:-{sizes.gpus_per_node}}}"
VERL_VERSION={verl_version}
export MEDALIGN_ROOT
# verl's environment (README.md): no verl, or transformers outside its range, stops here
installed="$("$PYTHON" "$JOB_DIR/check_env.py" 2>&1)" || {{
    echo "run.sh: $(printf '%s' "$installed" | tail -n 1)" >&2
    exit 1
}}
if [ "$installed" != "$VERL_VERSION" ]; then
    echo "run.sh: warning: verl $installed is installed; this job's overrides were" \\
        "checked against verl $VERL_VERSION" >&2
fi
cd "$JOB_DIR"
exec {_body(command, '"$PYTHON"')} \\
    "$@"
"""
    (out / "run.sh").write_text(run)
    (out / "run.sh").chmod(0o755)
    slurm = f"""#!/usr/bin/env bash
#SBATCH --job-name=medalign-verl
#SBATCH --nodes={sizes.nnodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={sizes.gpus_per_node}
#SBATCH --cpus-per-task=32
#SBATCH --output=%x-%j.out
# A Ray cluster over the allocated nodes (head on the first), then run.sh on it.
# Planned: {layout} (plan.world_size={sizes.nnodes * sizes.gpus_per_node}).
#
# On another cluster, edit: the #SBATCH lines above (--nodes x --gpus-per-node; add your
# --partition, --account, --time); MODEL_PATH, MEDALIGN_ROOT and PYTHON as in run.sh (set
# them in sbatch's environment; it exports them). verl gets the allocation's layout:
# $SLURM_JOB_NUM_NODES nodes x $SLURM_GPUS_ON_NODE GPUs.
# Submit from this folder (`cd <job> && sbatch slurm.sh`) or set JOB_DIR; the folder must
# be on a filesystem every node sees.
set -euo pipefail
JOB_DIR="${{JOB_DIR:-${{SLURM_SUBMIT_DIR:-$(cd "$(dirname "$0")" && pwd)}}}}"
if [ ! -f "$JOB_DIR/run.sh" ]; then
    echo "slurm.sh: no run.sh in $JOB_DIR: submit from the job folder or set JOB_DIR" >&2
    exit 1
fi
gpus="${{SLURM_GPUS_ON_NODE:-{sizes.gpus_per_node}}}"
nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
head=${{nodes[0]}}
head_ip=$(srun --nodes=1 --ntasks=1 -w "$head" hostname --ip-address | awk '{{print $1}}')
port=6379
srun --nodes=1 --ntasks=1 -w "$head" ray start --head --node-ip-address="$head_ip" \\
    --port=$port --num-gpus="$gpus" --block &
sleep 15
for node in "${{nodes[@]:1}}"; do
    srun --nodes=1 --ntasks=1 -w "$node" ray start --address="$head_ip:$port" \\
        --num-gpus="$gpus" --block &
done
sleep 15
export RAY_ADDRESS="$head_ip:$port"
GPUS_PER_NODE="$gpus" NNODES="$SLURM_JOB_NUM_NODES" \\
    srun --overlap --nodes=1 --ntasks=1 -w "$head" bash "$JOB_DIR/run.sh"
"""
    (out / "slurm.sh").write_text(slurm)
