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
never by import: the registry imports the task modules when a task is first looked up
(`registry._PROVIDERS`), the one place a lower layer names a higher one.
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
