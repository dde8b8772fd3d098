"""The report of one finished run: four PNG plots in `RUN/plots/` (five once checked) and `RUN/report.html`.

This module owns the HTML page (the finished run it shows is read by `runs.load_run`):
the run's summary with units and how each number was obtained, the architecture as a row of boxes, and the plots
(drawn by `plots.py`: candidate survival, final architecture probabilities, loss and accuracy per epoch, expected
FLOPs and latency per epoch against the budgets). The page has inline CSS, no scripts and no external resources,
and shows the plots by relative path (`plots/NAME.png`), so it opens from disk beside its folder. Every string
taken from the run is HTML-escaped; every file is written atomically.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from edgenas.cost.latency import describe_fidelity
from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes, atomic_write_text
from edgenas.report.check_plot import CAPTION, check_figure, read_check
from edgenas.report.plots import DRAW, png, table_name
from edgenas.runs.record import RunRecord, load_run
from edgenas.runs.summary import RunSummary
from edgenas.space.choices import parse_choice
from edgenas.space.spec import get_space
from edgenas.units import format_flops, format_params

PLOTS = {  # name -> how to read it (the figure caption)
    "survival": "Candidate survival. Rows: searchable layers; columns: candidate blocks. Colour: the stage after "
                "which the candidate was pruned (each stage drops every layer's weakest candidates: highest measured "
                "loss, or least probable with --prune-score alpha); blue: never pruned; framed: the candidate of the "
                "derived architecture.",
    "alphas": "Final architecture probabilities: per layer, the softmax of alpha over the candidates left after "
              "the last stage. The derived architecture (framed) maximises the summed log-probability within the "
              "budgets, so it is not always each layer's most probable candidate.",
    "training": "Loss and top-1 accuracy per epoch, phase after phase: the difficulty probe, each stage with the "
                "classes it admits, then retraining from scratch. The star is the retrained network's test "
                "accuracy.",
    "cost": "Expected FLOPs (and latency, with a latency table) of the supernet under its architecture "
            "probabilities per search epoch, against the budgets; the star is the derived network's exact cost.",
}
FLOPS_HOW = "fvcore on the built network, 1 multiply-add = 1 FLOP, batch norm excluded (folded into the conv), batch 1"


@dataclass
class ReportResult:
    html: Path
    plots: dict[str, Path]


def write_report(run_dir: str | Path) -> ReportResult:
    """Draw the run's plots into `RUN/plots/` and write `RUN/report.html`; returns the paths written."""
    record = load_run(run_dir)
    space = record.space()
    folder = record.path / "plots"
    if folder.exists() and not folder.is_dir():
        raise EdgeNASError(f"cannot write the plots: {folder} exists and is not a folder")
    folder.mkdir(exist_ok=True)
    plots = {name: atomic_write_bytes(folder / f"{name}.png", png(draw(record, space))) for name, draw in DRAW.items()}
    check = read_check(record.path)
    if check is not None:  # `edgenas check` was run on it
        plots["check"] = atomic_write_bytes(folder / "check.png", png(check_figure(check)))
    page = atomic_write_text(record.path / "report.html", render_html(record, list(plots)))
    return ReportResult(page, plots)


# ------------------------------------------------------------------ HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; margin: 0;
       background: #f6f7f9; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.2rem; margin: 32px 0 10px; border-bottom: 1px solid #d8dce3; padding-bottom: 4px; }
.sub { color: #5b6473; margin: 0 0 16px; overflow-wrap: anywhere; }
table.summary { border-collapse: collapse; background: white; width: 100%; table-layout: fixed; }
table.summary th, table.summary td { text-align: left; vertical-align: top; padding: 6px 10px;
                                     border-bottom: 1px solid #e6e8ec; }
table.summary th { width: 170px; color: #39414f; font-weight: 600; }
table.summary td.value { width: 300px; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
table.summary td.how { color: #5b6473; font-size: 0.9rem; overflow-wrap: anywhere; }
footer { color: #7a8290; font-size: 0.85rem; margin-top: 24px; overflow-wrap: anywhere; }
.arch { display: flex; flex-wrap: wrap; gap: 10px; align-items: stretch; }
.stage { border: 1px solid #c9cfd8; border-radius: 6px; padding: 6px 8px 8px; background: white; }
.stage h3 { font-size: 0.8rem; margin: 0 0 6px; color: #5b6473; font-weight: 600; }
.blocks { display: flex; gap: 6px; }
.block { width: 100px; border: 2px solid #3f6fb5; border-radius: 5px; padding: 4px 6px; background: #eaf1fb;
         font-size: 0.78rem; }
.block.skip { border-style: dashed; border-color: #9aa3b0; background: #f4f5f7; color: #6b7380; }
.block.fixed { border-color: #9aa3b0; background: #f4f5f7; }
.block .label { font-weight: 600; font-size: 0.72rem; color: #39414f; }
.block .choice { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85rem; font-weight: 600; }
.tag { display: inline-block; border-radius: 3px; padding: 0 4px; margin: 1px 2px 0 0; font-size: 0.7rem;
       background: #d5e2f5; }
.tag.se { background: #f6d9a8; }
.tag.res { background: #cfe9d2; }
figure { margin: 0 0 24px; background: white; border: 1px solid #e1e4e9; border-radius: 6px; padding: 10px; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: #5b6473; font-size: 0.9rem; margin-top: 6px; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min ({value:,.0f} s)"
    return f"{value / 3600:.2f} h ({value:,.0f} s)"


def _summary_rows(record: RunRecord) -> list[tuple[str, str, str]]:
    """(what, value, how it was obtained), plain text; escaped when rendered."""
    s, settings, resolved = record.summary, record.config["settings"], record.config.get("resolved", {})
    data = resolved.get("data", {})
    arch = s.arch
    table = table_name(s.latency_table)
    rows = [("dataset", f"{s.dataset}: {len(s.classes or [])} classes",
             f"{data.get('train_images', '?')} training, {data.get('val_images', '?')} search-validation, "
             f"{data.get('test_images', '?')} test images at {s.resolution}x{s.resolution}"),
            ("search space", f"{arch['space']} (width {arch['width_mult']})",
             f"{len(arch['layers'])} searchable layers, space hash {arch['space_hash']}"),
            ("strategy", str(s.strategy), f"schedule {settings.get('schedule')}{_scaled(s, settings, data)}, "
             f"prune ratio {settings.get('prune_ratio')}, seed {settings.get('seed')}"),
            ("FLOPs", f"{format_flops(s.flops)} ({s.flops:,} FLOPs)",
             f"{FLOPS_HOW}, {arch['resolution']}x{arch['resolution']}"),
            ("FLOPs budget", f"{format_flops(s.flops_budget)} ({s.flops_budget:,.0f} FLOPs)",
             "met" if s.within_flops_budget else "NOT met")]
    precision = s.precision.upper()
    fidelity = s.latency_fidelity  # None in runs from before it was recorded
    if s.predicted_latency_ms is not None:
        rows.append(("predicted latency", f"{s.predicted_latency_ms:.3f} ms",
                     f"{precision} table {table}: batch 1, sum of per-block medians with the table's calibration"
                     + (f"; {describe_fidelity(fidelity)}, {fidelity['method']}" if fidelity else "")))
    else:
        rows.append(("predicted latency", "not predicted", "no latency table in this run (search with --table "
                                                           "DEVICE)"))
    if s.latency_budget_ms is not None:
        rows.append(("latency budget", f"{s.latency_budget_ms:g} ms ({precision} table {table})",
                     s.budget_verdict))
    if fidelity and fidelity["note"]:
        rows.append(("latency table fidelity", "poor" if fidelity["count"] else "unknown",
                     fidelity["note"].removeprefix("note: ")))
    rows.append(("parameters", f"{format_params(s.params)} ({s.params:,})", "weights of the built network"))
    if s.test_acc is not None:
        rows.append(("test accuracy", f"{100 * s.test_acc:.2f}%", s.accuracy_method))
    else:
        rows.append(("test accuracy", "not measured", "the network was not retrained (--retrain-epochs 0)"))
    if s.inherited_val_acc is not None:
        rows.append(("validation accuracy", f"{100 * s.inherited_val_acc:.2f}%",
                     "derived network with the supernet's weights (batch norm recalibrated), search-validation split"))
    rows.append(("search time", _seconds(s.search_seconds),
                 f"wall clock on {resolved.get('device', '?')}; {s.search_images:,} image-steps"))
    rows.append(("retraining time", _seconds(s.retrain_seconds),
                 f"wall clock, {settings.get('retrain_epochs')} epochs from scratch"))
    return rows


def _scaled(summary: RunSummary, settings: dict, data: dict) -> str:
    """`, epochs x0.5 (--epochs-scale 0.5)`: how the schedule's epochs were scaled; empty where nothing was searched
    or the run is from before it was recorded."""
    factor = summary.schedule_scale
    if factor is None:
        return ""
    given = settings.get("epochs_scale")
    how = f"--epochs-scale {given:g}" if given is not None else \
        f"automatic for {data.get('train_images', '?')} training images; --epochs-scale sets it"
    return f", epochs x{factor:g} ({how})"


def _block_html(label: str, choice: str, detail: str, residual: bool, strided_skip: bool = False) -> str:
    spec = parse_choice(choice)
    if spec is None:
        what = "conv 1x1 + BN" if strided_skip else "identity"
        return (f'<div class="block skip" title="{_e(label)}: {_e(choice)}"><div class="label">{_e(label)}</div>'
                f'<div class="choice">skip</div><div>{what}</div><div>{_e(detail)}</div></div>')
    tags = f'<span class="tag">k{spec.kernel}</span><span class="tag">e{spec.expansion}</span>'
    tags += '<span class="tag se">SE</span>' if spec.se else ""
    tags += '<span class="tag res">+res</span>' if residual else ""
    return (f'<div class="block" title="{_e(label)}: {_e(choice)}"><div class="label">{_e(label)}</div>'
            f'<div class="choice">{_e(choice)}</div><div>{tags}</div><div>{_e(detail)}</div></div>')


def arch_html(arch: dict) -> str:
    """The architecture as a row of boxes, one per layer (stem and head in grey), grouped by stage."""
    space = get_space(arch["space"], arch["resolution"], arch["width_mult"])
    parts = ['<div class="arch">',
             '<div class="stage"><h3>stem</h3><div class="blocks">',
             _fixed_block("stem", f"conv 3x3, s{space.spec.stem_stride}",
                          f"{space.stem_channels} ch, {space.stem_size}x{space.stem_size}"),
             *([] if space.first_channels is None else [_fixed_block("first", "k3_e1", f"{space.first_channels} ch")]),
             "</div></div>"]
    stages: dict[int, list[str]] = {}
    for layer, choice in zip(space, arch["layers"], strict=True):
        detail = f"{layer.out_channels} ch, {layer.out_size}x{layer.out_size}" + (
            f", s{layer.stride}" if layer.stride > 1 else "")
        residual = layer.stride == 1 and layer.in_channels == layer.out_channels
        stages.setdefault(layer.stage, []).append(_block_html(layer.label, choice, detail, residual,
                                                              layer.skip_is_strided))
    for index, blocks in stages.items():
        parts.append(f'<div class="stage"><h3>stage {index}</h3><div class="blocks">{"".join(blocks)}</div></div>')
    parts += ['<div class="stage"><h3>head</h3><div class="blocks">',
              _fixed_block("head", "conv 1x1", f"{space.head_channels} ch, pool, linear {arch['num_classes']}"),
              "</div></div></div>"]
    return "\n".join(parts)


def _fixed_block(label: str, what: str, detail: str) -> str:
    return (f'<div class="block fixed"><div class="label">{_e(label)}</div><div class="choice">{_e(what)}</div>'
            f'<div>{_e(detail)}</div></div>')


def render_html(record: RunRecord, plots: list[str]) -> str:
    """One standalone page: inline CSS, no scripts, no external resources; images by relative path."""
    s = record.summary
    summary = "\n".join(f'<tr><th>{_e(what)}</th><td class="value">{_e(value)}</td><td class="how">{_e(how)}</td>'
                        f"</tr>" for what, value, how in _summary_rows(record))
    captions = {**PLOTS, "check": CAPTION}  # the check's plot once `edgenas check` has run
    figures = "\n".join(f'<figure><img src="plots/{_e(name)}.png" alt="{_e(captions[name].split(".")[0])}">'
                        f"<figcaption>{_e(captions[name])}</figcaption></figure>" for name in plots)
    versions = ", ".join(f"{k} {v}" for k, v in record.config.get("versions", {}).items())
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgenas run {_e(record.name)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>edgenas run {_e(record.name)}</h1>
<p class="sub">{_e(record.path.resolve())} &middot; {_e(s.strategy)} on {_e(s.dataset)} &middot;
{len(s.layers)} searchable layers of {_e(s.arch["space"])}</p>
<h2>Summary</h2>
<table class="summary">
{summary}
</table>
<h2>Architecture</h2>
{arch_html(s.arch)}
<h2>Search</h2>
{figures}
<footer>Written by edgenas from {_e(record.path.resolve())}: summary.json, config.json, history.jsonl.
Versions of the run: {_e(versions)}.</footer>
</main>
</body>
</html>
"""
