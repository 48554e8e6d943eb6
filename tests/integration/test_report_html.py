"""report.html: one self-contained page per curriculum or sweep, checked in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from medalign.errors import MedalignError
from medalign.reports.html import write_report_html
from tests.run_fixtures import make_curriculum

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Appended to a copy of the page: once loaded, it records what rendered.
CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const out = document.createElement("pre");
  out.id = "medalign-check";
  out.textContent = JSON.stringify({
    tables: document.querySelectorAll("table").length,
    rows: document.querySelectorAll("table#results tr").length,
    images: images.length,
    rendered: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    links: Array.from(document.links).map((a) => a.href),
  });
  document.body.appendChild(out);
});
</script></body>"""


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def _plot(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(["yes", "no", "maybe"], [5, 2, 1])
    fig.savefig(path)
    plt.close(fig)


def _report(tmp_path: Path) -> Path:
    source = make_curriculum(tmp_path, adapters=False)
    _plot(source / "1-pubmedqa" / "eval" / "plots" / "pubmedqa_confusion.png")
    return write_report_html(source)


def test_report_is_self_contained_with_tables_images_and_links(tmp_path: Path) -> None:
    page = _report(tmp_path).read_text()
    parser = _Collect()
    parser.feed(page)
    images = [a for t, a in parser.tags if t == "img"]
    assert len(images) == 2  # the results plot and the stage's evaluation plot
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)
    assert not re.search(r'(src|href)="(http|//)[^"]*"', page.replace("https://wandb.ai/", ""))
    assert sum(t == "table" for t, _ in parser.tags) == 2 + 3  # results, stages, 3 stages
    assert 'href="https://wandb.ai/lab/medalign/runs/abc1xyz"' in page
    assert '<td class="num best">0.340</td>' in page  # medqa's best accuracy, after medqa


def test_sweep_report(tmp_path: Path) -> None:
    (tmp_path / "sweep_summary.json").write_text(
        json.dumps(
            {
                "metric": "train/loss",
                "direction": "minimize",
                "best": {"job": "1_pubmedqa", "metric": 1.2},
                "jobs": [
                    {
                        "job": "1_pubmedqa",
                        "overrides": ["lora.r=16"],
                        "status": "done",
                        "metric": 1.2,
                        "wandb_run_id": None,
                    },
                    {
                        "job": "0_pubmedqa",
                        "overrides": ["lora.r=8"],
                        "status": "done",
                        "metric": 1.5,
                        "wandb_run_id": "w0",
                    },
                ],
            }
        )
    )
    page = write_report_html(tmp_path).read_text()
    assert "lora.r=16" in page and page.count("<img ") == 1 and "<code>w0</code>" in page


def test_nothing_to_report_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MedalignError, match="no manifest.json or sweep_summary.json"):
        write_report_html(tmp_path)


def _chromium(*args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    logging = ["--enable-logging=stderr", "--log-level=0"]
    return subprocess.run(
        [CHROMIUM, *flags, *logging, *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    report = _report(tmp_path)
    shot = tmp_path / "report.png"
    done = _chromium("--window-size=1200,1800", f"--screenshot={shot}", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script, resource or parse errors reported by the page
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a page, not a blank

    checked = tmp_path / "checked.html"
    checked.write_text(report.read_text().replace("</body>", CHECK))
    done = _chromium("--virtual-time-budget=5000", "--dump-dom", checked.as_uri())
    found = re.search(r'<pre id="medalign-check">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["tables"] == 5 and result["rows"] == 4  # header + before/pubmedqa/medqa
    assert result["images"] == 2 and result["rendered"] == 2
    assert "https://wandb.ai/lab/medalign/runs/abc1xyz" in result["links"]


def test_the_report_shows_results_md_s_forgetting_reward_model_and_rl_tables(
    tmp_path: Path,
) -> None:
    """report.html showed the scores and the paired changes only: the forgetting table,
    the reward models' held-out accuracy and GRPO's fifths were in results.md alone."""
    source = make_curriculum(tmp_path, adapters=False)
    (source / "results.md").write_text(
        "# Curriculum\n\n| stage | medqa |\n|---|---:|\n| before | 0.25 |\n\n"
        "## Forgetting: each trained dataset, its best row against the last\n\n"
        "Forgetting is claimed only where the paired drop is significant.\n\n"
        "| dataset | verdict |\n|---|---|\n| pubmedqa | forgetting <b> |\n\n"
        "## Reward models: held-out pairwise accuracy\n\n"
        "| stage | model | n |\n|---|---|---:|\n| reward | safety | 150 |\n\n"
        "## RL rewards: mean over the first and the last fifth of the steps\n\n"
        "| stage | reward | change |\n|---|---|---:|\n| rl | correctness | +0.328 ✱ |\n\n"
        "p: Welch's t-test.\n"
    )
    # the curriculum writes those sections as data too (issue #34): report.html reads that
    from medalign.reports.sections import Section

    text = (source / "results.md").read_text()
    sections = [Section.from_markdown("## " + part) for part in text.split("\n## ")[1:]]
    (source / "results_sections.json").write_text(json.dumps([x.to_json() for x in sections]))
    page = write_report_html(source).read_text()
    for heading in ("Forgetting: each trained", "Reward models: held-out", "RL rewards: mean"):
        assert f"<h2>{heading}" in page, heading
    assert "<td>forgetting &lt;b&gt;</td>" in page  # escaped, a cell of its own
    assert "<td>+0.328 ✱</td>" in page and "<p>p: Welch&#x27;s t-test.</p>" in page
    parser = _Collect()
    parser.feed(page)
    assert sum(t == "table" for t, _ in parser.tags) == 2 + 3 + 3  # and the three sections


def _stage_rows(page: str, stage: str) -> dict[str, list[str]]:
    """{metric: [its other cells]} of the `Stage <stage>` metrics table."""
    table = page.split(f"<h2>Stage {stage}</h2>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", table)
    return {metric: re.findall(r"<td[^>]*>(.*?)</td>", rest) for metric, rest in rows}


def test_stage_tables_give_ece_brier_and_loss_their_n_and_interval_or_say_why_not(
    tmp_path: Path,
) -> None:
    """Issue 36: each stage's ECE, Brier and loss cells had neither n nor interval. A
    metric whose eval/results.json holds a "ci" shows `value [lo, hi]` and its n; one
    without says in the cell why there is none."""
    source = make_curriculum(tmp_path, adapters=False)
    manifest = json.loads((source / "manifest.json").read_text())
    stage = manifest["stages"][1]  # pubmedqa: trained, then evaluated
    stage["metrics"] |= {
        "eval/pubmedqa/ece": 0.12,
        "eval/pubmedqa/brier": 0.31,
        "eval/medqa/brier": 0.6,
        "eval/best_loss": 1.5,
    }
    stage["validation"] = {"best_loss": 1.5, "rows": 12}
    results = {
        "pubmedqa": {
            "n": 50,
            "metrics": {
                "acc": {"value": 0.58, "ci": [0.44, 0.71], "n": 50, "interval": "wilson"},
                "ece": {"value": 0.12, "n": 50},  # as eval/choice.py writes it
                "brier": {"value": 0.31, "ci": [0.27, 0.35], "n": 50},
            },
        },
        "medqa": {"n": 40, "metrics": {"brier": {"value": 0.6, "n": 40}}},
    }
    (Path(stage["dir"]) / "eval").mkdir(parents=True)
    (Path(stage["dir"]) / "eval" / "results.json").write_text(json.dumps(results))
    (source / "manifest.json").write_text(json.dumps(manifest))
    rows = _stage_rows(write_report_html(source).read_text(), "pubmedqa")
    assert rows["eval/pubmedqa/acc"] == ["0.580 [0.440, 0.710]", "50"]
    assert rows["eval/pubmedqa/brier"] == ["0.310 [0.270, 0.350]", "50"]
    ece, n = rows["eval/pubmedqa/ece"]
    assert ece.startswith("0.120 (no interval: ") and n == "50"
    brier, n = rows["eval/medqa/brier"]
    assert brier.startswith("0.600 (no interval: ") and n == "40"
    for loss, n in (("train/loss", "16 training rows"), ("eval/best_loss", "12 held-out rows")):
        value, count = rows[loss]
        assert "(no interval: " in value and count == n, (loss, rows[loss])
    for metric, cells in rows.items():  # every number: an interval, or why not; and an n
        assert len(cells) == 2 and ("[" in cells[0] or "no interval: " in cells[0]), metric


def test_a_share_recorded_without_interval_gets_the_results_tables_wilson_interval(
    tmp_path: Path,
) -> None:
    """False confidence is recorded as value and n; the per-stage table shows the Wilson
    interval results.md shows for it, not "no interval" beside an interval elsewhere."""
    import json

    from medalign.eval.metrics import wilson_count
    from medalign.reports.stage_metrics import metric_rows

    (tmp_path / "eval").mkdir()
    results = {"pubmedqa": {"n": 40, "metrics": {"false_confidence": {"value": 0.25, "n": 8}}}}
    (tmp_path / "eval" / "results.json").write_text(json.dumps(results))
    stage = {"metrics": {"eval/pubmedqa/false_confidence": 0.25}}
    ((metric, cell, n),) = metric_rows(stage, tmp_path)
    low, high = wilson_count(2, 8)
    assert n == "8" and cell == f"0.250 [{low:.3f}, {high:.3f}]"
