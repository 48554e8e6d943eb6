"""Silence the known-harmless start-up messages, so a run shows medalign's own progress.

    MEDALIGN_VERBOSE=1 python -m medalign stage=pubmedqa     (everything comes back)
    python -m medalign stage=pubmedqa --verbose               (the same, as a flag)

Called once by `medalign.cli.main` before Hydra composes anything. Each filter below
matches one message we have seen on every run and checked to be harmless; nothing else is
hidden, so a new warning from a library still reaches the user. The list (reproduced with
`python -m medalign stage=pubmedqa debug=fast`, transformers 5.24, TRL 1.16, bitsandbytes
0.50, optuna 2.10 / alembic):

- bitsandbytes' CPU backend logs "Failed to load CPU gemm_4bit_forward from
  kernels-community: No module named 'kernels'" at import: it falls back to its own CPU
  kernels (and installing `kernels` would make it download code at import).
- optuna imports alembic, which logs seven "setup plugin alembic...." lines at INFO once
  Hydra has set the root logger to INFO (every Optuna sweep).
- transformers' FutureWarnings "`gradient_checkpointing` is deprecated ... Use
  `activation_checkpointing`" (TRL's configs still set the old name) and
  "`is_gradient_checkpointing` is deprecated" (read by TRL and peft).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

VERBOSE_ENV = "MEDALIGN_VERBOSE"
VERBOSE_FLAGS = ("--verbose",)

# (logger name, substring of the message) for records that are dropped.
LOG_FILTERS: tuple[tuple[str, str], ...] = (
    ("bitsandbytes.backends.cpu.ops", "from kernels-community"),
    ("alembic.runtime.plugins", "setup plugin "),
)
# regular expressions matched against the start of FutureWarning messages.
FUTURE_WARNINGS: tuple[str, ...] = (
    r"`gradient_checkpointing` is deprecated and will be removed in v6",
    r"`gradient_checkpointing_kwargs` is deprecated and will be removed in v6",
    r"`is_gradient_checkpointing` is deprecated and will be removed in v6",
)


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def verbose_requested(argv: list[str] | None = None) -> bool:
    """MEDALIGN_VERBOSE set to anything but 0/false/empty, or --verbose on the command line."""
    value = os.environ.get(VERBOSE_ENV, "").strip().lower()
    if value not in ("", "0", "false", "no"):
        return True
    return any(arg in VERBOSE_FLAGS for arg in (sys.argv if argv is None else argv))


def quiet(argv: list[str] | None = None) -> list[str]:
    """Install the filters (unless verbose was asked for); return argv without --verbose."""
    argv = list(sys.argv if argv is None else argv)
    if verbose_requested(argv):
        os.environ[VERBOSE_ENV] = "1"  # child processes (accelerate, launchers) agree
        return [a for a in argv if a not in VERBOSE_FLAGS]
    for name, fragment in LOG_FILTERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.fragment == fragment for f in logger.filters):
            logger.addFilter(_DropMessage(fragment))
    for pattern in FUTURE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=FutureWarning)
    return argv
