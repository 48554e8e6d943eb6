"""What the curriculum writes, pinned: a fixed finished curriculum
(tests/results_fixture.py) gives exactly the results.md, report.html, paired_changes.json,
results table and results.png in tests/assets/results_expected/ (the run's own path
replaced by <run>). They were generated from commit 70c5cc5, before the reporting moved
out of medalign/curriculum.py, and the move changed no byte; since then they are
regenerated only by commits that change the output on purpose, each saying which change
(issue 36's curriculum tables; issue 33's header naming the safety columns).
paired_changes.json is compared less the per-row fields
issue 36's compare added, which the test requires to be there."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from medalign.config import validate
from tests.conftest import compose
from tests.results_fixture import finished_curriculum, normalized

EXPECTED = Path(__file__).resolve().parents[1] / "assets" / "results_expected"
# each paired row's claim role (primary | secondary) and its Monte Carlo precision
ADDED_BY_ISSUE_36 = {"role", "p_resamples", "p_mc_se"}


def test_the_results_files_are_byte_identical_to_the_code_before_the_move(
    tmp_path: Path,
) -> None:
    from medalign.reports.results import results_table, write_results

    run = tmp_path / "run"
    manifest = finished_curriculum(run)
    manifest["results"] = results_table(manifest)
    (run / "manifest.json").write_text(json.dumps(manifest))
    cfg = validate(compose("logger=none", "compare.resamples=1000"))
    write_results(run, manifest["results"], cfg, manifest)
    table = json.dumps(manifest["results"], indent=1, sort_keys=True) + "\n"
    assert table == (EXPECTED / "results_table.json").read_text()
    for name in ("results.md", "report.html"):
        written = normalized((run / name).read_text(), run)
        assert written == (EXPECTED / name).read_text(), f"{name} differs"
    # paired_changes.json: the same rows, plus the fields issue 36 added to each comparison
    changes = json.loads(normalized((run / "paired_changes.json").read_text(), run))
    rows = [row for change in changes for row in change.values() if isinstance(row, dict)]
    assert rows and all(set(row) >= ADDED_BY_ISSUE_36 for row in rows)
    for row in rows:
        for key in ADDED_BY_ISSUE_36:
            del row[key]
    assert changes == json.loads((EXPECTED / "paired_changes.json").read_text())
    png = hashlib.sha256((run / "results.png").read_bytes()).hexdigest()
    assert png + "\n" == (EXPECTED / "results.png.sha256").read_text()


def test_a_section_is_the_same_as_markdown_html_and_data() -> None:
    from medalign.reports.sections import Section, Table

    table = Table(("stage", "weight"), "|---|---:|", (("rl", ""), ("sft", "0.2 <b>")))
    section = Section("RL rewards: the fifths", ("p: Welch's t-test.", table))
    text = section.markdown()
    assert text == (
        "\n## RL rewards: the fifths\n\np: Welch's t-test.\n\n"
        "| stage | weight |\n|---|---:|\n| rl |  |\n| sft | 0.2 <b> |\n"
    )
    assert Section.from_markdown(text) == section  # what reports/paired.py gives as text
    assert Section.from_json(json.loads(json.dumps(section.to_json()))) == section
    assert section.html() == [
        "<h2>RL rewards: the fifths</h2>",
        "<p>p: Welch&#x27;s t-test.</p>",
        "<table><tr><th>stage</th><th>weight</th></tr><tr><td>rl</td><td></td></tr>"
        "<tr><td>sft</td><td>0.2 &lt;b&gt;</td></tr></table>",
    ]
    assert Section.from_markdown("") is None
