"""Reports and comparisons of real tiny runs: valid PNG plots, a standalone escaped report.html, compare's numbers."""

import json
import shutil
from html.parser import HTMLParser

import pytest
from conftest import CHEAP
from typer.testing import CliRunner

from edgenas.cli.app import app
from edgenas.report.compare import pareto
from edgenas.report.html import PLOTS
from edgenas.runs.record import load_run
from edgenas.runs.settings import SearchSettings
from edgenas.searching.run import search
from edgenas.units import format_flops

QUICK = {"space": "tiny", "schedule": "0.2:1,0.5:1,1.0:1", "retrain_epochs": 1, "batch_size": 128, **CHEAP,
         "report": True}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A DA-NAS run and a random-architecture run (no supernet: every plot must still say something)."""
    root = tmp_path_factory.mktemp("runs")
    quiet = {"progress": False, "log": lambda *a: None}
    danas = search(SearchSettings(**QUICK, flops=250_000), out=root / "danas", **quiet)
    random = search(SearchSettings(**QUICK, flops=200_000, strategy="random"), out=root / "random", **quiet)
    return danas, random


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.blocks, self.text, self.tags = [], [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "div" and "block" in (attrs.get("class") or "").split():
            self.blocks.append(attrs.get("title"))

    def handle_data(self, data):
        self.text.append(data)


def _page(path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def _check_png(path, min_width=500, min_height=300):
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 5_000, (path, len(data))
    height, width, channels = imread(path).shape
    assert width >= min_width and height >= min_height and channels in (3, 4), (path, width, height)


@pytest.mark.parametrize("which", [0, 1], ids=["danas", "random"])
def test_search_writes_every_plot_as_a_valid_png(runs, which):
    result = runs[which]
    assert result.report == result.run / "report.html" and result.report.is_file()
    for name in PLOTS:
        _check_png(result.run / "plots" / f"{name}.png")


def test_report_html_is_standalone_and_shows_plots_architecture_and_summary(runs):
    result = runs[0]
    page = _page(result.report)
    assert page.images == [f"plots/{name}.png" for name in PLOTS]
    for src in page.images:  # opens from disk: every image resolves beside the page
        assert (result.report.parent / src).is_file()
    html = result.report.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html and "<link" not in html
    layers = result.summary["arch"]["layers"]
    assert [t for t in page.blocks if t] == [f"stages.{s}.{i}: {c}" for (s, i), c in
                                              zip([(0, 0), (0, 1), (1, 0), (1, 1)], layers, strict=True)]
    text = " ".join(" ".join(page.text).split())
    s = result.summary
    for expected in (f"{100 * s['test_acc']:.2f}%", f"{format_flops(s['flops'])} ({s['flops']:,} FLOPs)",
                     "1 multiply-add = 1 FLOP", "batch norm excluded", "fvcore", "digits", "tiny",
                     f"{s['search_seconds']:.1f} s", f"{s['retrain_seconds']:.1f} s",
                     "not predicted", "no latency table"):
        assert expected in text, expected


def test_history_holds_the_final_probabilities_the_plot_shows(runs):
    record = load_run(runs[0].run)
    probs = record.final_probs()
    last_prune = record.prune_rows()[-1]
    space = record.space()
    for layer, row, active in zip(space, probs, last_prune["active_choices"], strict=True):
        assert len(row) == len(layer.choices) and sum(row) == pytest.approx(1, abs=1e-4)
        assert [c for c, p in zip(layer.choices, row, strict=True) if p > 0] == active
    from edgenas.runs.folder import Run

    assert Run(runs[0].run).load_checkpoint()["final_probs"] == probs


def test_report_escapes_every_string_from_the_run(runs, tmp_path):
    copy = tmp_path / "a<b>&c"
    shutil.copytree(runs[0].run, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["dataset"] = '<script>alert("x")</script>'
    (copy / "summary.json").write_text(json.dumps(summary))
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    html = (copy / "report.html").read_text()
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "a<b>&c" not in html and "a&lt;b&gt;&amp;c" in html


def test_report_command_rewrites_the_report(runs, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(runs[1].run, copy)
    shutil.rmtree(copy / "plots")
    (copy / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output and (copy / "report.html").is_file()
    for name in PLOTS:
        _check_png(copy / "plots" / f"{name}.png")


def test_a_search_with_no_report_draws_none_and_report_draws_it_later(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--space", "tiny", "--schedule", "1.0:1", "--probe-epochs", "0", "--retrain-epochs", "0",
            "--batch-size", "128", "--flops", "250K", "--warmup-epochs", "1", "--score-paths", "8", "--no-report"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"] is None
    assert not (out / "report.html").exists() and not (out / "plots").exists()
    assert json.loads((out / "config.json").read_text())["settings"]["report"] is False
    drawn = CliRunner().invoke(app, ["report", str(out)])
    assert drawn.exit_code == 0, drawn.output
    assert (out / "report.html").is_file() and {p.stem for p in (out / "plots").iterdir()} == set(PLOTS)


@pytest.mark.parametrize("case", ["missing", "not-a-run", "unfinished"])
def test_a_folder_that_is_not_a_finished_run_is_one_line_and_writes_nothing(runs, tmp_path, case):
    target = tmp_path / "folder"
    if case == "not-a-run":
        target.mkdir()
        (target / "notes.txt").write_text("hello")
    elif case == "unfinished":
        shutil.copytree(runs[0].run, target)
        shutil.rmtree(target / "plots")
        (target / "report.html").unlink()
        (target / "summary.json").unlink()
    before = sorted(p.name for p in target.iterdir()) if target.exists() else None
    for args in (["report", str(target)], ["compare", str(runs[0].run), str(target), "--out",
                                            str(tmp_path / "c.png")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert str(target) in result.output
        assert (sorted(p.name for p in target.iterdir()) if target.exists() else None) == before
        assert not (tmp_path / "c.png").exists()


def test_a_failed_report_does_not_fail_the_run_and_says_so(runs, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(runs[1].run, copy)
    shutil.rmtree(copy / "plots")
    (copy / "plots").write_text("in the way")
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 1 and "is not a folder" in result.output
    result = CliRunner().invoke(app, ["train", str(copy), "--epochs", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert "the report was not written" in result.stderr and f"edgenas report {copy}" in result.stderr
    assert json.loads(result.stdout)["test_acc"] is not None  # the warning stays off stdout
    assert json.loads((copy / "summary.json").read_text())["test_acc"] is not None


def test_pareto_front_closed_form():
    # (cost, accuracy): the cheapest, a costlier but better one, one dominated on both, a tie in accuracy at
    # higher cost, and an exact duplicate of an optimal point (both stay optimal).
    points = [(1, 0.5), (2, 0.6), (2, 0.4), (3, 0.6), (1, 0.5)]
    assert pareto(points) == [True, True, False, False, True]
    assert pareto([]) == [] and pareto([(5, 0.1)]) == [True]


def test_compare_table_json_and_plot_agree(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # rich's width: one table row per line
    paths = [str(r.run) for r in runs]
    table = CliRunner().invoke(app, ["compare", *paths])
    assert table.exit_code == 0, table.output
    assert "compare.png" in table.output
    _check_png(tmp_path / "compare.png", min_width=400, min_height=300)
    as_json = CliRunner().invoke(app, ["compare", *paths, "--json", "--out", "again.png"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["plot"] == "again.png" and (tmp_path / "again.png").is_file()
    rows = data["runs"]
    assert [r["run"] for r in rows] == paths
    lines = {line.split("│")[1].strip(): line for line in table.output.splitlines() if line.count("│") > 3}
    for row, run in zip(rows, runs, strict=True):
        assert row["flops"] == run.summary["flops"] and row["test_acc"] == run.summary["test_acc"]
        line = lines[row["name"]]
        assert f"{row['flops'] / 1e6:.3f}" in line and f"{100 * row['test_acc']:.2f}" in line
        assert ("yes" if row["pareto_flops"] else "no") in line.split("│")[6]
        assert row["predicted_latency_ms"] is None and row["pareto_latency"] is None
    points = [(r["flops"], r["test_acc"]) for r in rows]
    assert [r["pareto_flops"] for r in rows] == pareto(points)


def test_compare_refuses_a_plot_that_is_not_png(runs, tmp_path):
    result = CliRunner().invoke(app, ["compare", str(runs[0].run), "--out", str(tmp_path / "c.jpg")])
    assert result.exit_code == 1 and "expected a .png file" in result.output
    assert not (tmp_path / "c.jpg").exists()


def test_compare_refuses_runs_of_different_datasets_in_one_line(runs, tmp_path):
    """Accuracies on two test sets share no Pareto front: refused, naming each dataset and its runs."""
    other = tmp_path / "other"
    shutil.copytree(runs[1].run, other)
    summary = json.loads((other / "summary.json").read_text())
    summary["dataset"] = "cifar10-jpeg"
    (other / "summary.json").write_text(json.dumps(summary))
    result = CliRunner().invoke(app, ["compare", str(runs[0].run), str(runs[1].run), str(other), "--out",
                                      str(tmp_path / "c.png")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert " ".join(result.output.split()) == (
        f"error: the runs are of different datasets (digits: {runs[0].run}, {runs[1].run}; cifar10-jpeg: {other}): "
        "test accuracies on different test sets share no Pareto front; compare the runs of one dataset at a time")
    assert not (tmp_path / "c.png").exists()


def test_the_report_says_how_the_schedule_was_scaled(runs):
    from edgenas.report.html import _summary_rows

    rows = {what: how for what, _, how in _summary_rows(load_run(runs[0].run))}
    images = json.loads((runs[0].run / "config.json").read_text())["resolved"]["data"]["train_images"]
    scale = runs[0].summary["schedule_scale"]
    assert f"schedule {QUICK['schedule']}, epochs x{scale:g} (automatic for {images} training images; "\
           "--epochs-scale sets it)" in rows["strategy"]


def test_phase_labels_that_would_overprint_are_left_out():
    """Phases of 1-2 epochs among 40 retraining epochs (their labels overprinted): the labels drawn, measured by
    matplotlib once drawn, do not overlap; wide phases keep their full label, narrow ones their name or none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from edgenas.report.phases import mark_phases, phase_labels, segments
    from edgenas.report.plots import new_figure

    rows = [{"phase": "probe"}, {"phase": "warm-up", "classes": 3}, {"phase": "stage 0", "classes": 3},
            *[{"phase": "stage 1", "classes": 5}] * 2, *[{"phase": "stage 2", "classes": 10}] * 2,
            *[{"phase": "retrain"}] * 40]
    figure, axes = new_figure(9, 6.2, rows=2, sharex=True)
    axes[0].plot(range(1, len(rows) + 1), [1.0] * len(rows))
    mark_phases(axes, rows, 10)
    FigureCanvasAgg(figure)
    figure.draw_without_rendering()  # the constrained layout placed, as png() would
    boxes = [text.get_window_extent() for text in axes[0].texts]
    assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    drawn = [text.get_text() for text in axes[0].texts]
    assert drawn[-1] == "retrain\n10/10 classes" and len(drawn) < len(segments(rows))
    low, high = axes[0].get_xlim()
    # Wide enough, every phase keeps its full label.
    assert [label for _, label in phase_labels(segments(rows), 10, (high - low) / 100)] == [
        "probe", "warm-up\n3/10 classes", "stage 0\n3/10 classes", "stage 1\n5/10 classes", "stage 2\n10/10 classes",
        "retrain\n10/10 classes"]


def test_the_summary_reads_back_as_the_search_wrote_it(runs):
    from edgenas.runs.summary import RunSummary

    for result in runs:
        written = json.loads((result.run / "summary.json").read_text())
        summary = RunSummary.from_dict(written)
        assert summary.to_dict() == written and list(summary.to_dict()) == list(written)  # key for key, in order
        assert summary.flops == written["flops"] and summary.layers == written["arch"]["layers"]
        assert summary.extra == {}


# Keys a summary.json from before they were recorded lacks (the oldest runs have none of them).
NEWER_KEYS = ("latency_fidelity", "latency_precision", "latency_budget_verdict", "choice", "schedule_scale",
              "full_data_epochs", "flops_budget_default", "accuracy_method", "search_images", "flops_method")


def test_a_run_written_before_the_newer_summary_keys_still_reports(runs, tmp_path):
    from edgenas.report.html import _summary_rows
    from edgenas.runs.summary import RunSummary

    copy = tmp_path / "old"
    shutil.copytree(runs[0].run, copy)
    written = json.loads((copy / "summary.json").read_text())
    old = {key: value for key, value in written.items() if key not in NEWER_KEYS}
    (copy / "summary.json").write_text(json.dumps({**old, "key_of_a_newer_version": 1}))
    summary = RunSummary.from_dict(json.loads((copy / "summary.json").read_text()))
    assert summary.choice is None and summary.search_images == 0 and summary.precision == "fp32"
    assert summary.extra == {"key_of_a_newer_version": 1}
    rows = {what: (value, how) for what, value, how in _summary_rows(load_run(copy))}
    assert rows["test accuracy"] == (f"{100 * old['test_acc']:.2f}%", "")
    assert rows["search time"][1].endswith("; 0 image-steps")
    for command in (["report", str(copy)], ["compare", str(copy), "--out", str(tmp_path / "c.png")],
                    ["search", "--resume", str(copy)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, (command, result.output)
