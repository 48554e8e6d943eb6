"""The layers of medalign's import graph, bottom to top: the one place the order is written.

A unit is a package under medalign/ (`data`, `eval`, `stages` ...) or a top-level module
(`config`, `run` ...). A module imports from its own unit and from units on lower lines
of `LAYERS` only; units on one line are siblings and never import each other. This holds
for imports inside functions as much as for those at the top of a module (a lazy import
is about start-up time, not about which way a dependency points); tests/unit/test_layers.py
enforces it, with its short, commented list of exceptions.

    errors, quiet, preempt, checkpoints, layers     leaves: import nothing of medalign
    registry                                        names -> components (imports on lookup)
    locks, config                                   lock files, typed config
    compose, outputs, models                        run directory; model loading, LoRA, init_from
    tracking, resume, plan, data                    W&B; resume; memory plan; records, loaders
    eval                                            scoring every task shares
    rewards                                         reward functions, preference pairs, RL prompts
    tasks                                           one Task per format: data in, eval/rewards used
    compare, rl_engines, world                      paired comparisons; the verl hand-off; world
    reports                                         report.html, the paired tables
    stages                                          one runner per stage.kind
    checks, sweep                                   start-up checks; sweep summaries
    run, _plugins                                   one stage from a config; Hydra plugins
    curriculum                                      stages in order in one run
    guard, requeue                                  what the command line checks around a run
    cli                                             the entry point
    __main__                                        python -m medalign

Below `tasks` a Task is reached by name through the registry (`data.loading.get_task`),
never by import: the registry imports a kind's modules when that kind is first looked up
(`registry._PROVIDERS`). Such a lookup is an import up the layers made at run time, so
each one is declared in `REACHES` with its reason, and tests/unit/test_layers.py fails on
a lookup that reaches up without a line there (and on a line no lookup needs).
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "quiet", "preempt", "checkpoints", "layers"),
    ("registry",),
    ("locks", "config"),
    ("compose", "outputs", "models"),
    ("tracking", "resume", "plan", "data"),
    ("eval",),
    ("rewards",),
    ("tasks",),
    ("compare", "rl_engines", "world"),
    ("reports",),
    ("stages",),
    ("checks", "sweep"),
    ("run", "_plugins"),
    ("curriculum",),
    ("guard", "requeue"),
    ("cli",),
    ("__main__",),
)


def layer(unit: str) -> int:
    """The line of `LAYERS` that holds `unit` (0: the bottom); KeyError if none does."""
    for number, units in enumerate(LAYERS):
        if unit in units:
            return number
    raise KeyError(f"medalign.{unit} has no layer: add it to medalign/layers.py LAYERS")


# (unit that looks a registry kind up, the kind) -> why a lower unit may reach the higher
# units that register that kind (registry._PROVIDERS), at run time and by name only.
REACHES: dict[tuple[str, str], str] = {
    ("config", "stage"): (
        "validate merges stage.* onto the schema of stage.kind's StageSpec (stages/, "
        "curriculum): a kind from a plugin brings its own schema"
    ),
    ("compose", "config_resolver"): (
        "model=world's YAML reads ${world_root:...}: the synthetic world (world/store.py) "
        "is written on first use, while Hydra composes"
    ),
    ("models", "model_builder"): "model.builder=world builds the world's model (world/model.py)",
    ("models", "stage"): (
        "check_switches: a kind that only plans (StageSpec.plans_only, stage=plan) needs "
        "neither CUDA nor the switches' packages"
    ),
    ("plan", "stage"): "check_colocate applies to a kind that generates (StageSpec.generates: rl)",
    ("data", "task"): "a dataset's format is a Task (tasks/), found by name: data/ sits below",
    ("rewards", "task"): "the correctness reward asks each prompt's Task to score its completion",
    ("eval", "task"): "the evaluation runner scores each dataset with its Task (get_task)",
    ("stages", "stage"): (
        "stages/spec.py looks every kind up by name, the curriculum's too (a run of runs, "
        "which runs stages and so sits above them)"
    ),
    ("checks", "stage"): "the start-up checks read the kind's roles, the curriculum's included",
    ("sweep", "stage"): (
        "check_sweep_metric: a sweep.metric under eval/ needs jobs whose kind evaluates "
        "(StageSpec.will_evaluate), the curriculum's included"
    ),
    ("run", "stage"): (
        "run() hands stage=curriculum to its StageSpec's pipeline, which calls run() for "
        "each stage: the one loop, by name"
    ),
}
