"""`make test` runs on two pytest-xdist workers; a module's expensive fixture (the small
world's runs, the compare runs on real rows) must be built on one of them, not on both.

It was not: the Makefile asked for `--dist loadgroup` and marked those modules with
`xdist_group`, but pytest-xdist 3.8 groups by rewriting `item._nodeid`, which pytest 9
no longer reads, so the groups were silently ignored and the small world's three runs
(about 60 s) could be made twice."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def _make_test_flags() -> list[str]:
    """The xdist flags of the Makefile's `test` recipe."""
    recipe = re.search(r"^test:.*\n\t(.+)$", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "no test target in the Makefile"
    words = shlex.split(recipe.group(1))
    flags = []
    for k, word in enumerate(words):
        if word in ("-n", "--dist"):
            flags += [word, words[k + 1]]
    return flags


def test_make_test_keeps_a_module_s_tests_on_one_worker(tmp_path: Path) -> None:
    flags = _make_test_flags()
    assert "-n" in flags, flags
    module = tmp_path / "test_one_module.py"
    log = tmp_path / "workers.txt"
    module.write_text(
        "import os\n"
        + "".join(
            f"def test_{k}():\n"
            f"    with open({str(log)!r}, 'a') as f:\n"
            "        f.write(os.environ.get('PYTEST_XDIST_WORKER', 'none') + '\\n')\n"
            for k in range(6)
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *flags, "-q", "-p", "no:cacheprovider", str(module)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workers = log.read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, workers
