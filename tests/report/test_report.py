"""advisor report end to end: two real small searches logged to a real MLflow SQLite store, the report
read back from MLflow only, checked against the runs, rendered in headless Chromium.

Searches: 300 digits at 32 px through ImageNet MobileNetV2 with tiny spaces (2 epochs, k <= 3).
``exp-a`` runs analyze (``--strategy auto``) over several strategies with one injected failure and no
pruner; ``exp-b`` searches last_k alone, without analyze, with the default Hyperband pruner, seed 3 and
a 0.5/0.3/0.2 split.
Set ADVISOR_KEEP_SCREENSHOT=1 to keep the rendered page as reports/report-screenshot.png.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from advisor.cli import main
from advisor.search import SearchConfig, run_search

ROOT = Path(__file__).resolve().parents[2]

SPACE_A = """\
description: tiny comparison for the report tests
strategies:
  svm_early:
    block: {type: categorical, choices: [ir8, ir10, ir13]}
    C: {type: float, low: 1.0e-2, high: 1.0e+1, log: true}
  linear_probe:
    C: {type: float, low: 1.0e-2, high: 1.0e+1, log: true}
  last_k:
    k: {type: int, low: 1, high: 3}
    head_lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
    lr_ratio: {type: float, low: 0.01, high: 1.0, log: true}
    epochs: 2
    batch_size: 32
  full_finetune:
    head_lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
    lr_ratio: {type: float, low: 0.03, high: 1.0, log: true}
    epochs: 2
    batch_size: 32
"""

SPACE_B = """\
strategy: last_k
params:
  k: {type: int, low: 1, high: 3}
  head_lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
  lr_ratio: {type: float, low: 0.01, high: 1.0, log: true}
  epochs: 2
  batch_size: 32
"""

PLOT_SECTIONS = ("depth", "lr-ratio", "history", "importances", "curves")
HEADINGS = ("Summary", "Search against the advice", "Dataset and model", "Dataset profile", "Advice and its evidence",
            "Strategies compared", "Best configuration", "Validation accuracy against freeze depth",
            "Validation accuracy against the learning-rate ratio", "Optimization history", "Parameter importances",
            "Learning curves", "All trials")


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """See tests/conftest.py."""


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """Two searches in one workspace (one MLflow store): exp-a (auto, 4 strategies) and exp-b (last_k)."""
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "a.yaml").write_text(SPACE_A)
    (tmp / "b.yaml").write_text(SPACE_B)
    common = dict(dataset="digits:30", image_size=32, workspace=str(tmp / "ws"), cache_dir=str(tmp / "cache"))
    a = run_search(SearchConfig(strategy="auto", space=str(tmp / "a.yaml"), trials=6, analyze_sample=200,
                                pruner="none", study_name="study-a", experiment="exp-a", fail_trials=[3], **common))
    b = run_search(SearchConfig(strategy="last_k", space=str(tmp / "b.yaml"), trials=5, study_name="study-b",
                                experiment="exp-b", seed=3, split="0.5,0.3,0.2", **common))
    assert a.tracking_uri == b.tracking_uri
    return SimpleNamespace(tmp=tmp, a=a, b=b, uri=a.tracking_uri, common=common)


def _report(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["report", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def report_a(searches):
    """The single-experiment report of exp-a, made through the CLI."""
    out = searches.tmp / "out"
    assert main(["report", "--experiment", "exp-a", "--tracking-uri", searches.uri, "--out", str(out)]) == 0
    html, md = out / "exp-a.html", out / "exp-a.md"
    return SimpleNamespace(html_path=html, html=html.read_text(), md=md.read_text())


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def _runs(uri: str, parent_run_id: str):
    client = _client(uri)
    parent = client.get_run(parent_run_id)
    trials = client.search_runs([parent.info.experiment_id], max_results=1000,
                                filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return parent, sorted(trials, key=lambda r: int(r.data.tags["advisor.trial_number"]))


def _md_section(md: str, title: str) -> str:
    start = md.index(f"## {title}\n")
    end = md.find("\n## ", start + 1)
    return md[start:end if end >= 0 else None]


def _md_row(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


class _Sections(HTMLParser):
    """Per <section id>: its <h2> text, the <img> sources and the 'nothing to plot' notes in it."""

    def __init__(self):
        super().__init__()
        self.current, self.in_h2 = None, False
        self.h2: dict[str, str] = {}
        self.imgs: dict[str, list[str]] = {}
        self.notes: dict[str, int] = {}
        self.cols: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.current = a.get("id")
            self.imgs[self.current], self.notes[self.current], self.cols[self.current] = [], 0, 0
        elif tag == "h2":
            self.in_h2 = True
        elif tag == "img" and self.current:
            self.imgs[self.current].append(a.get("src") or "")
        elif tag == "p" and "na" in (a.get("class") or "").split() and self.current:
            self.notes[self.current] += 1
        elif tag == "div" and a.get("class") == "col" and self.current:
            self.cols[self.current] += 1

    def handle_endtag(self, tag):
        if tag == "h2":
            self.in_h2 = False
        elif tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.in_h2 and self.current:
            self.h2[self.current] = self.h2.get(self.current, "") + data


def _sections(html: str) -> _Sections:
    p = _Sections()
    p.feed(html)
    return p


# ------------------------------------------------------------------ numbers match the MLflow runs
def test_the_report_shows_the_numbers_of_the_mlflow_runs(searches, report_a):
    parent, trials = _runs(searches.uri, searches.a.parent_run_id)
    md, html = report_a.md, report_a.html
    states = [t.data.tags["advisor.state"] for t in trials]
    counts = {s: states.count(s) for s in ("complete", "pruned", "failed")}
    # trial 3 failed on purpose, no pruner: the three counts differ, so a mix-up shows; the measured check's
    # runs inside the space are complete trials too (added from analyze, not trained by the search)
    assert searches.a.from_check > 0
    assert counts == {"complete": 5 + searches.a.from_check, "pruned": 0, "failed": 1}
    summary = _md_section(md, "Summary")
    assert _md_row(summary, "trials complete / pruned / failed")[1] == \
        f"{counts['complete']} / {counts['pruned']} / {counts['failed']}"
    best_val, test_acc = parent.data.metrics["best_val_accuracy"], parent.data.metrics["test_accuracy"]
    assert _md_row(summary, "best validation accuracy")[1] == f"{best_val:.4f}"
    assert _md_row(summary, "test accuracy (best trial)")[1] == f"{test_acc:.4f}"
    assert _md_row(summary, "test macro-F1 (best trial)")[1] == f"{parent.data.metrics['test_macro_f1']:.4f}"
    assert _md_row(summary, "best trial")[1] == parent.data.tags["advisor.best_trial"]
    # the same numbers in the HTML summary table
    table = html[html.index('id="summary-table"'):]
    table = table[:table.index("</table>")]
    assert f"<td class=\"l\">{best_val:.4f}</td>" in table and f"<td class=\"l\">{test_acc:.4f}</td>" in table
    assert f"{counts['complete']} / {counts['pruned']} / {counts['failed']}" in table

    # strategies table: per strategy, counts by tag and the best complete value
    strategies = _md_section(md, "Strategies compared")
    for name in {t.data.tags["strategy"] for t in trials}:
        mine = [t for t in trials if t.data.tags["strategy"] == name]
        row = _md_row(strategies, name)
        assert row[7:10] == [str(sum(t.data.tags["advisor.state"] == s for t in mine))
                             for s in ("complete", "pruned", "failed")]
        done = [t.data.metrics["best_val_accuracy"] for t in mine if t.data.tags["advisor.state"] == "complete"]
        assert row[1] == (f"{max(done):.4f}" if done else "-")

    # best configuration: the parent's best.* params
    best = _md_section(md, "Best configuration")
    assert _md_row(best, "strategy")[1] == parent.data.params["best.strategy"]
    for key, value in parent.data.params.items():
        name = key[len("best."):]
        if key.startswith("best.") and name != "strategy":
            shown = _md_row(best, name)[1]
            expected = float(value) if "." in value or "e" in value.lower() else value
            # the page shows 6 decimals (6 significant digits below 0.01): half a unit of the last one shown
            assert (float(shown) == pytest.approx(expected, rel=5e-6, abs=5e-7)) if isinstance(expected, float) \
                else shown.lower() == value.lower(), (key, shown, value)

    # one row per trial run, with its state and value
    every = _md_section(md, "All trials")
    for t in trials:
        row = _md_row(every, t.data.tags["advisor.trial_number"])
        assert row[1] == t.data.tags["advisor.state"]
        if row[1] == "complete":
            assert row[3] == f"{t.data.metrics['best_val_accuracy']:.4f}"


def test_the_report_says_whether_the_search_agreed_with_the_advice(searches, report_a):
    parent, trials = _runs(searches.uri, searches.a.parent_run_id)
    advised = parent.data.tags["advisor.advice_strategy"]
    best = next(t for t in trials if t.data.tags["advisor.trial_number"] == parent.data.tags["advisor.best_trial"])
    # the advised strategy is in space A, so one trial holds the advised configuration (the measured check's
    # run of it, added to the study, or the first trained trial), and its run says so
    first = next(t for t in trials if t.data.tags.get("advisor.advised") == "true")
    assert [t for t in trials if t.data.tags.get("advisor.advised")] == [first]
    assert first.data.tags["advisor.trial_number"] == str(searches.a.advice_trial)
    section = _md_section(report_a.md, "Search against the advice")
    agrees = best.data.tags["strategy"] == advised
    assert ("The search agreed with the advice" in section) == agrees
    assert ("did not agree" in section) != agrees
    if first.data.tags["advisor.state"] == "complete":
        gain = (parent.data.metrics["best_val_accuracy"] - first.data.metrics["best_val_accuracy"]) * 100
        assert _md_row(section, "difference")[3] == f"{gain:+.1f} points"
        assert _md_row(section, "advised")[1] == str(searches.a.advice_trial)
    assert _md_row(_md_section(report_a.md, "Summary"), "advised strategy")[1] == advised
    # the profile and the advice came from the parent's artifacts
    assert "| 19 | conv_last" in _md_section(report_a.md, "Dataset profile")
    assert f"Advised strategy: {advised}" in _md_section(report_a.md, "Advice and its evidence")


# ------------------------------------------------------------------ the page itself
def test_the_html_page_is_self_contained(report_a):
    html = report_a.html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, re.I)
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(https?:)?//", html, re.I)
    sources = re.findall(r'<img [^>]*src="([^"]*)"', html)
    assert len(sources) >= 5
    from PIL import Image

    for src in sources:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG" and image.size[0] >= 300 and image.size[1] >= 150


def test_every_plot_section_has_a_chart_or_says_why_not(searches, report_a):
    found = _sections(report_a.html)
    for key in (*PLOT_SECTIONS, "profile"):
        assert len(found.imgs[key]) + found.notes[key] == 1, key
    for key in ("depth", "lr-ratio", "history", "curves", "profile"):
        assert len(found.imgs[key]) == 1 and len(found.imgs[key][0]) > 2000, key
    assert len(found.imgs["importances"]) == 1  # 5 complete trials (the unit test below covers too few)


def test_the_page_is_attached_to_the_parent_run(searches, report_a):
    client = _client(searches.uri)
    paths = [a.path for a in client.list_artifacts(searches.a.parent_run_id, "report")]
    assert paths == ["report/exp-a.html"]
    local = client.download_artifacts(searches.a.parent_run_id, "report/exp-a.html", str(searches.tmp))
    assert Path(local).read_text() == report_a.html


# ------------------------------------------------------------------ headless Chromium
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _chrome(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    browser = _chromium()
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


_IMAGE_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img'));
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; });
  var d = document.createElement('div'); d.id = 'image-check';
  d.setAttribute('data-total', imgs.length); d.setAttribute('data-loaded', ok.length);
  document.body.appendChild(d);
});
</script></body>"""


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (scripts/setup.sh installs Debian's "
                                                 "chromium when run as root or with passwordless sudo)")
def test_the_page_renders_in_headless_chromium(searches, report_a):
    shot = searches.tmp / "report.png"
    run = _chrome([f"--screenshot={shot}", "--window-size=1280,4000", report_a.html_path.as_uri()],
                  searches.tmp / "chrome-profile")
    assert shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot)
    assert image.size == (1280, 4000) and shot.stat().st_size > 50_000
    assert len(image.convert("RGB").resize((64, 200)).getcolors(64 * 200) or []) > 50  # not a blank page
    console = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln or "net::ERR" in ln
               or "Not allowed to load" in ln]
    assert not console, console
    if os.environ.get("ADVISOR_KEEP_SCREENSHOT") == "1":
        (ROOT / "reports").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "reports" / "report-screenshot.png")

    # the DOM after loading: every heading, one decoded chart per plot section (a test-only copy counts them)
    probe = searches.tmp / "probe.html"
    probe.write_text(report_a.html.replace("</body>", _IMAGE_CHECK, 1))
    run = _chrome(["--dump-dom", "--virtual-time-budget=5000", probe.as_uri()], searches.tmp / "chrome-profile")
    dom = run.stdout
    assert dom.count("<h2>") == len(HEADINGS), run.stderr[-2000:]
    found = _sections(dom)
    assert sorted(found.h2.values()) == sorted(HEADINGS)
    check = re.search(r'id="image-check" data-total="(\d+)" data-loaded="(\d+)"', dom)
    assert check, dom[-500:]
    total, loaded = int(check.group(1)), int(check.group(2))
    assert total == loaded == sum(len(v) for v in found.imgs.values()) >= 5
    for key in ("depth", "lr-ratio", "history", "curves"):
        assert len(found.imgs[key]) == 1, key


# ------------------------------------------------------------------ side by side
def test_two_experiments_side_by_side(searches, capsys):
    out = searches.tmp / "both"
    code, stdout, err = _report(["--experiment", "exp-a", "--experiment", "exp-b", "--tracking-uri", searches.uri,
                                 "--out", str(out)], capsys)
    assert code == 0, err
    html, md = (out / "exp-a-vs-exp-b.html").read_text(), (out / "exp-a-vs-exp-b.md").read_text()
    assert "exp-a-vs-exp-b.html" in stdout
    found = _sections(html)
    for key in found.cols:
        if key != "summary":
            assert found.cols[key] == 2, key  # one column per study in every section
    summary = _md_section(md, "Summary")
    assert _md_row(summary, "")[1:] == ["exp-a / study-a", "exp-b / study-b"]
    pa, _ = _runs(searches.uri, searches.a.parent_run_id)
    pb, trials_b = _runs(searches.uri, searches.b.parent_run_id)
    assert _md_row(summary, "best validation accuracy")[1:] == [f"{pa.data.metrics['best_val_accuracy']:.4f}",
                                                                f"{pb.data.metrics['best_val_accuracy']:.4f}"]
    assert _md_row(summary, "test accuracy (best trial)")[1:] == [f"{pa.data.metrics['test_accuracy']:.4f}",
                                                                  f"{pb.data.metrics['test_accuracy']:.4f}"]
    assert _md_row(summary, "agreed with the advice")[2] == "-"  # exp-b ran no analyze
    states = [t.data.tags["advisor.state"] for t in trials_b]
    assert len(trials_b) == 5
    assert _md_row(summary, "trials complete / pruned / failed")[2] == \
        f"{states.count('complete')} / {states.count('pruned')} / {states.count('failed')}"
    # exp-a has 5 complete trials: importances, and how they were computed
    assert len(found.imgs["importances"]) >= 1 and "random forest" in html
    assert "### exp-b / study-b" in md and "No profile: analyze did not run" in md
    client = _client(searches.uri)
    for run_id in (searches.a.parent_run_id, searches.b.parent_run_id):
        assert "report/exp-a-vs-exp-b.html" in [a.path for a in client.list_artifacts(run_id, "report")]


def test_the_train_command_of_the_report_reproduces_the_best_trial(searches, capsys, tmp_path):
    """exp-b ran with seed 3 and a 0.5/0.3/0.2 split: the command carries both, so it trains on the same
    images and gets the best trial's validation accuracy again."""
    import json

    out = searches.tmp / "out-b"
    code, _, err = _report(["--experiment", "exp-b", "--tracking-uri", searches.uri, "--out", str(out)], capsys)
    assert code == 0, err
    line = next(x for x in (out / "exp-b.md").read_text().splitlines() if "advisor train " in x)
    command = line[line.index("advisor train ") + len("advisor train "):].strip().strip("`").split()
    assert command[command.index("--seed") + 1] == "3" and command[command.index("--split") + 1] == "0.5,0.3,0.2"
    assert main(["train", *command, "--cache-dir", searches.common["cache_dir"], "--json", str(tmp_path / "r.json"),
                 "--quiet"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["val_accuracy"] == pytest.approx(searches.b.best_value, abs=1e-9)
    assert result["test_accuracy"] == pytest.approx(searches.b.test_accuracy, abs=1e-9)


# ------------------------------------------------------------------ analysis units
def _study(values: list[tuple[str, str, float | None, dict]], advice=None, tags=None):
    from advisor.report.collect import StudyData, TrialRecord

    trials = [TrialRecord(number=i, run_id=f"r{i}", state=state, strategy=strategy, params=params, value=value,
                          last_val_accuracy=value, wall_time=1.0, trainable_params=10, fail_reason=None)
              for i, (strategy, state, value, params) in enumerate(values)]
    return StudyData(experiment="e", experiment_id="1", tracking_uri="sqlite:///x.db", parent_run_id="p",
                     study_name="s", tags=tags or {}, status="FINISHED", start_time=0, best_val_accuracy=None,
                     test_accuracy=None, test_macro_f1=None, best_trial=None, best_params={}, trials=trials,
                     advice=advice)


def test_importances_need_four_complete_trials():
    from advisor.report.analysis import importances

    three = _study([("last_k", "complete", 0.1 * i, {"k": i, "head_lr": 0.01 * i}) for i in range(1, 4)]
                   + [("last_k", "pruned", 0.05, {"k": 1, "head_lr": 0.3})])
    assert "not enough trials" in importances(three).reason
    five = _study([("last_k", "complete", 0.1 * i, {"k": i, "head_lr": 0.01}) for i in range(1, 6)])
    imp = importances(five)
    assert imp.reason is None and imp.names == ["k"] and imp.values == pytest.approx([1.0])  # head_lr is constant
    mixed = _study([("linear_probe", "complete", 0.8, {"C": 1.0}), ("linear_probe", "complete", 0.7, {"C": 0.1}),
                    ("last_k", "complete", 0.5, {"k": 1, "epochs": 2}),
                    ("last_k", "complete", 0.6, {"k": 2, "epochs": 2})])
    imp = importances(mixed)
    assert set(imp.names) == {"C", "k", "strategy"} and sum(imp.values) == pytest.approx(1.0)  # epochs is fixed


def test_full_finetune_advice_agrees_with_last_k_over_all_blocks():
    from advisor.report.analysis import advised_trial, agreement

    advice = SimpleNamespace(strategy="full_finetune", params={}, search_space=SimpleNamespace(n_blocks=19))
    study = _study([("last_k", "complete", 0.60, {"k": 19}), ("last_k", "complete", 0.72, {"k": 19}),
                    ("last_k", "complete", 0.50, {"k": 2})], advice=advice)
    assert advised_trial(study).number == 0  # runs logged before the advisor.advised tag: trial 0
    a = agreement(study)
    assert a.agrees is True and a.gain_points == pytest.approx(12.0) and "beat the advised configuration (trial #0) by 12.0 points" in a.sentence
    study.trials[1].params["k"] = 5
    assert agreement(study).agrees is False
    study.trials[2].advised = True  # the tag wins over the trial-0 rule
    assert advised_trial(study).number == 2 and agreement(study).gain_points == pytest.approx(22.0)


def test_the_agreement_says_whether_the_gain_exceeds_the_validation_noise():
    from advisor.report.analysis import agreement

    advice = SimpleNamespace(strategy="last_k", params={"k": 3}, search_space=SimpleNamespace(n_blocks=19))
    study = _study([("last_k", "complete", 0.60, {"k": 3}), ("last_k", "complete", 0.72, {"k": 3})], advice=advice)
    assert agreement(study).noise_points is None  # no profile, no split size: nothing claimed
    study.profile = SimpleNamespace(blocks=[None] * 19, size=SimpleNamespace(split={"train": 600, "val": 200, "test": 200}))
    a = agreement(study)
    assert a.noise_points == pytest.approx(100 * (0.72 * 0.28 / 200) ** 0.5)  # 3.2 points
    assert "more than two standard errors" in a.sentence
    study.trials[1].value = 0.62  # 2 points: within one standard error (3.4)
    a = agreement(study)
    assert "2.0 points is within noise" in a.sentence and "On 200 validation images" in a.sentence
    # the choice between the best trial and the advice is not sent to the test split
    assert "check the test metric" not in a.sentence and "more validation data" in a.sentence


# ------------------------------------------------------------------ errors: one line, exit 2
def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("advisor: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_an_unknown_experiment_is_one_line(searches, capsys):
    code, _, err = _report(["--experiment", "no-such", "--tracking-uri", searches.uri,
                            "--out", str(searches.tmp / "x")], capsys)
    _one_line_error(code, err, "no MLflow experiment named 'no-such'", "exp-a")
    assert not (searches.tmp / "x").exists()


def test_an_experiment_without_study_or_completed_trial_is_one_line(searches, capsys):
    client = _client(searches.uri)
    empty = client.create_experiment("empty-exp")
    code, _, err = _report(["--experiment", "empty-exp", "--tracking-uri", searches.uri], capsys)
    _one_line_error(code, err, "'empty-exp' has no runs")
    client.create_run(empty, run_name="not-a-study")
    code, _, err = _report(["--experiment", "empty-exp", "--tracking-uri", searches.uri], capsys)
    _one_line_error(code, err, "no advisor study run")
    failed = client.create_experiment("failed-exp")
    parent = client.create_run(failed, run_name="dead", tags={"advisor.kind": "study", "advisor.study_name": "dead"})
    for number, state in enumerate(("failed", "pruned")):
        run = client.create_run(failed, tags={"mlflow.parentRunId": parent.info.run_id, "advisor.kind": "trial",
                                              "advisor.trial_number": str(number), "advisor.state": state,
                                              "strategy": "last_k"})
        client.set_terminated(run.info.run_id, "FAILED")
    code, _, err = _report(["--experiment", "failed-exp", "--tracking-uri", searches.uri], capsys)
    _one_line_error(code, err, "study 'dead'", "no completed trial", "1 pruned, 1 failed")


def test_an_unreachable_tracking_server_is_one_line(tmp_path):
    cmd = [sys.executable, "-m", "advisor.cli", "report", "--experiment", "x", "--tracking-uri",
           "http://127.0.0.1:9", "--out", str(tmp_path / "out")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    _one_line_error(run.returncode, run.stderr, "http://127.0.0.1:9 is unreachable")
    assert not (tmp_path / "out").exists()


def test_a_missing_local_store_is_one_line_and_creates_nothing(tmp_path, capsys):
    code, _, err = _report(["--experiment", "x", "--workspace", str(tmp_path / "ws")], capsys)
    _one_line_error(code, err, "no MLflow store at")
    assert not (tmp_path / "ws").exists()


def test_the_best_strategys_own_tables_reach_the_html_and_markdown_report(tmp_path, capsys):
    """A strategy declares its tables once (``Strategy.tables``): the terminal shows them after ``advisor train``,
    and the search logs the refit's (``strategy_tables.json`` on the parent run), so the report's best
    configuration shows them too, in both formats."""
    import json

    from advisor.track.names import STRATEGY_TABLES

    space = tmp_path / "rgn.yaml"
    space.write_text("strategy: auto_rgn\nparams:\n  head_lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
                     "  epochs: 1\n  batch_size: 32\n")
    res = run_search(SearchConfig(strategy="auto_rgn", space=str(space), trials=1, pruner="none", dataset="digits:30",
                                  image_size=32, weights="random", workspace=str(tmp_path / "ws"),
                                  cache_dir=str(tmp_path / "cache"), study_name="rgn", experiment="rgn"))
    client = _client(res.tracking_uri)
    logged = json.loads(Path(client.download_artifacts(res.parent_run_id, STRATEGY_TABLES, str(tmp_path))).read_text())
    scales = next(t for t in logged if isinstance(t, dict) and t.get("css_id") == "rgn-table")
    assert scales["rows"][0][0] == "head:label" and "block:stem" in [r[0] for r in scales["rows"]]
    out = tmp_path / "out"
    code, _, err = _report(["--experiment", "rgn", "--tracking-uri", res.tracking_uri, "--out", str(out)], capsys)
    assert code == 0, err
    html, md = (out / "rgn.html").read_text(), (out / "rgn.md").read_text()
    best = _md_section(md, "Best configuration")
    assert "Auto-RGN: mean rate scale" in best and f"| {scales['rows'][0][0]} | {scales['rows'][0][1]} |" in best
    assert 'class="rgn-table"' in html and "Auto-RGN: mean rate scale" in html
