"""The plots of one run, drawn with matplotlib's `Figure` (never pyplot: no global backend or figure state).

Four figures, each a function of a `RunRecord` and its space: candidate survival (`survival`), the final
architecture probabilities (`alphas`), loss and accuracy per epoch (`training`) and the expected FLOPs and latency
per epoch against the budgets (`cost`). A figure with nothing to show says why inside itself, so a report always
has the same four images. `html.py` writes them; `compare.py` borrows `new_figure` and `png`.
"""

from __future__ import annotations

import io
from pathlib import Path

from edgenas.report.phases import mark_phases
from edgenas.runs.record import RunRecord
from edgenas.space.choices import SKIP
from edgenas.space.spec import Space
from edgenas.units import format_flops

_NA, _KEPT = "#eeeeee", "#4c8fd6"


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def new_figure(width: float, height: float, rows: int = 1, sharex: bool = False, ratios: list[float] | None = None):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(rows, 1, sharex=sharex, squeeze=False, height_ratios=ratios)[:, 0]
    return figure, list(axes)


def _integer_epochs(axes) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _message(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11, color="#444444",
              transform=axes.transAxes)
    axes.tick_params(bottom=False, left=False, labelbottom=False, labelleft=False)  # not set_xticks: axes may share x


def _columns(space: Space) -> list[str]:
    """Every choice of the space once, in the space's order (`skip` last)."""
    return list(space.spec.candidates) + ([SKIP] if any(layer.allows_skip for layer in space) else [])


def _grid(figure, axes, space: Space, colours: list[list[str]], texts: list[list[str]], chosen: list[str]) -> None:
    """A layer x candidate grid of coloured cells with a text each; the chosen candidate of each layer framed."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Rectangle

    columns = _columns(space)
    axes.imshow([[to_rgb(c) for c in row] for row in colours], aspect="auto", interpolation="nearest")
    for i, row in enumerate(texts):
        pick = columns.index(chosen[i]) if chosen[i] in columns else None
        for j, text in enumerate(row):
            dark = sum(to_rgb(colours[i][j])) < 1.6
            axes.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "#222222",
                      fontweight="bold" if j == pick else "normal")
        if pick is not None:  # above the white grid lines, or the frame looks like two thin ones
            axes.add_patch(Rectangle((pick - 0.45, i - 0.45), 0.9, 0.9, fill=False, linewidth=2.5,
                                     edgecolor="black", zorder=5))
    axes.set_xticks(range(len(columns)), columns, rotation=35, ha="right", fontsize=8)
    axes.set_yticks(range(len(space)), [f"{layer.label} ({layer.out_channels} ch)" for layer in space], fontsize=8)
    axes.set_xticks([x - 0.5 for x in range(1, len(columns))], minor=True)
    axes.set_yticks([y - 0.5 for y in range(1, len(space))], minor=True)
    axes.grid(which="minor", color="white", linewidth=1.5)
    axes.tick_params(which="minor", length=0)
    axes.set_xlabel("candidate")


def _grid_size(space: Space) -> tuple[float, float]:
    return 3.2 + 0.72 * len(_columns(space)), 1.8 + 0.3 * len(space)


def survival(record: RunRecord, space: Space):
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    figure, (axes,) = new_figure(*_grid_size(space))
    prunes = record.prune_rows()
    classes = {h["phase"]: h.get("classes") for h in record.search_rows()}
    total = len(record.summary.classes or []) or "?"
    shades = [colormaps["OrRd"](0.85 - 0.5 * k / max(1, len(prunes) - 1)) for k in range(len(prunes))]
    when: dict[tuple[int, str], int] = {}
    for k, row in enumerate(prunes):
        for i, dropped in enumerate(row["pruned"]):
            for choice in dropped:
                when[(i, choice)] = k
    colours, texts = [], []
    for i, layer in enumerate(space):
        colours.append([])
        texts.append([])
        for choice in _columns(space):
            if choice not in layer.choices:
                colours[-1].append(_NA)
                texts[-1].append("n/a")
            elif (i, choice) in when:
                colours[-1].append(shades[when[(i, choice)]])
                texts[-1].append(f"s{prunes[when[(i, choice)]]['phase'].removeprefix('stage ')}")
            else:
                colours[-1].append(_KEPT)
                texts[-1].append("chosen" if choice == record.summary.layers[i] else "kept")
    chosen = record.summary.layers
    _grid(figure, axes, space, colours, texts, chosen)
    legend = [Patch(facecolor=shades[k], label=f"pruned after {row['phase']} ({classes.get(row['phase'], '?')}/"
                    f"{total} classes)") for k, row in enumerate(prunes)]
    legend += [Patch(facecolor=_KEPT, label="never pruned"), Patch(facecolor=_NA, label="not a choice here"),
               Patch(facecolor="none", edgecolor="black", linewidth=2.5, label="chosen (derived architecture)")]
    axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    title = "Candidate survival per layer"
    if not prunes:
        title += f" (strategy {record.summary.strategy}: nothing pruned)"
    elif any(row.get("restored_cheapest") for row in prunes):
        title += " (some candidates were restored to keep the budget feasible)"
    axes.set_title(title, fontsize=11)
    return figure


def alphas(record: RunRecord, space: Space):
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    from matplotlib.patches import Patch

    figure, (axes,) = new_figure(*_grid_size(space))
    probs = record.final_probs()
    if probs is None or len(probs) != len(space):
        _message(axes, f"no architecture probabilities: strategy {record.summary.strategy} trains no "
                 "supernet" if probs is None else "the recorded probabilities do not match the space's layers")
        axes.set_title("Final architecture probabilities", fontsize=11)
        return figure
    blues = colormaps["Blues"]
    colours, texts = [], []
    for layer, row in zip(space, probs, strict=True):
        by_choice = dict(zip(layer.choices, row, strict=False))
        colours.append([])
        texts.append([])
        for choice in _columns(space):
            p = by_choice.get(choice)
            if p is None:
                colours[-1].append(_NA)
                texts[-1].append("n/a")
            elif p == 0:
                colours[-1].append("#ffffff")
                texts[-1].append("")
            else:
                colours[-1].append(to_hex(blues(0.1 + 0.85 * p)))
                texts[-1].append(f"{p:.2f}")
    _grid(figure, axes, space, colours, texts, record.summary.layers)
    axes.legend(handles=[Patch(facecolor=to_hex(blues(0.1 + 0.85 * p)), label=f"p = {p:g}") for p in (0.1, 0.5, 1)]
                + [Patch(facecolor="white", edgecolor="#bbbbbb", label="pruned (p = 0)"),
                   Patch(facecolor=_NA, label="not a choice here"),
                   Patch(facecolor="none", edgecolor="black", linewidth=2.5, label="chosen (most probable within "
                         "the budgets)")], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes.set_title("Final architecture probabilities\n(softmax of alpha over the unpruned candidates)", fontsize=11)
    return figure


def training(record: RunRecord, space: Space):
    rows = [h for h in record.history if "epoch" in h]
    figure, axes = new_figure(9, 6.2, rows=2, sharex=True)
    if not rows:
        _message(axes[0], "no epochs recorded in history.jsonl")
        return figure
    total = len(record.summary.classes or []) or rows[0].get("classes") or 0
    search = [(x, h) for x, h in enumerate(rows, 1) if h["phase"] != "retrain"]
    retrain = [(x, h) for x, h in enumerate(rows, 1) if h["phase"] == "retrain"]
    style = {"marker": "o", "markersize": 3} if len(rows) <= 40 else {}
    arch = [(x, h) for x, h in search if h.get("arch_steps")]
    for series, label, colour in ((search, "supernet, sampled paths (training split)", "tab:blue"),
                                  (arch, "supernet, architecture steps (search-validation split)", "tab:orange"),
                                  (retrain, "retrained network (training split)", "tab:green")):
        if not series:
            continue
        key = "arch_loss" if series is arch else "train_loss"
        axes[0].plot([x for x, _ in series], [h[key] for _, h in series], color=colour, label=label, **style)
        if series is not arch:
            axes[1].plot([x for x, _ in series], [100 * h["train_acc"] for _, h in series], color=colour,
                         label=label.replace(" (training split)", ", training accuracy"), **style)
    summary = record.summary
    if summary.inherited_val_acc is not None and search:
        axes[1].plot([search[-1][0]], [100 * summary.inherited_val_acc], "D", color="tab:purple",
                     label=f"derived network, supernet weights: {100 * summary.inherited_val_acc:.1f}% "
                           "(search-validation)")
    if summary.test_acc is not None:
        axes[1].plot([len(rows)], [100 * summary.test_acc], "*", markersize=13, color="tab:red",
                     label=f"retrained network: {100 * summary.test_acc:.1f}% (test split)")
    mark_phases(axes, rows, total)
    axes[0].set_ylabel("loss (cross-entropy,\nlabel smoothing)")
    axes[1].set_ylabel("top-1 accuracy (%)")
    axes[1].set_xlabel("epoch (all phases in order)")
    axes[1].set_ylim(0, 100)
    _integer_epochs(axes[1])
    for a in axes:
        a.legend(fontsize=8, loc="best")
        a.grid(alpha=0.3)
    axes[0].set_title("Loss and accuracy per epoch", fontsize=11, pad=30)
    return figure


def cost(record: RunRecord, space: Space):
    summary = record.summary
    rows = record.search_rows()
    latency = any(h.get("expected_ms") is not None for h in rows)
    figure, axes = new_figure(9, 6.2 if latency else 4.6, rows=2, sharex=latency,
                              ratios=None if latency else [4, 1])
    table = table_name(summary.latency_table)
    if not rows:
        text = (f"strategy {summary.strategy}: no supernet, so no expected cost per epoch.\n"
                f"The network has {format_flops(summary.flops)} FLOPs (budget "
                f"{format_flops(summary.flops_budget)})")
        if summary.predicted_latency_ms is not None:
            text += f" and {summary.predicted_latency_ms:.3f} ms predicted by table {table}"
        _message(axes[0], text + ".")
        axes[1].set_visible(False)
        return figure
    xs = list(range(1, len(rows) + 1))
    style = {"marker": "o", "markersize": 3} if len(rows) <= 40 else {}
    axes[0].plot(xs, [h["expected_flops"] / 1e6 for h in rows], color="tab:blue",
                 label="expected FLOPs under the architecture probabilities", **style)
    axes[0].axhline(summary.flops_budget / 1e6, color="tab:red", linestyle="--",
                    label=f"budget {format_flops(summary.flops_budget)}")
    axes[0].plot([xs[-1]], [summary.flops / 1e6], "*", markersize=13, color="tab:green",
                 label=f"derived network: {format_flops(summary.flops)} (fvcore)")
    axes[0].set_ylabel("FLOPs (millions)")
    if latency:
        axes[1].plot(xs, [h.get("expected_ms") for h in rows], color="tab:blue",
                     label=f"expected latency (table {table})", **style)
        if summary.latency_budget_ms is not None:
            axes[1].axhline(summary.latency_budget_ms, color="tab:red", linestyle="--",
                            label=f"budget {summary.latency_budget_ms:g} ms")
        if summary.predicted_latency_ms is not None:
            axes[1].plot([xs[-1]], [summary.predicted_latency_ms], "*", markersize=13, color="tab:green",
                         label=f"derived network: {summary.predicted_latency_ms:.3f} ms (table)")
        axes[1].set_ylabel("predicted latency (ms, batch 1)")
        axes[1].legend(fontsize=8, loc="best")
        axes[1].grid(alpha=0.3)
    else:
        _message(axes[1], "no latency table in this run: latency was not predicted\n"
                 "(search with --table DEVICE, and --latency 12ms for a budget)")
    axes[-1 if latency else 0].set_xlabel("search epoch")
    _integer_epochs(axes[0])
    axes[0].legend(fontsize=8, loc="best")
    axes[0].grid(alpha=0.3)
    mark_phases([axes[0]] + ([axes[1]] if axes[1].lines else []), rows, len(summary.classes or []))
    axes[0].set_title("Expected cost per search epoch against the budgets\n(FLOPs by fvcore, 1 multiply-add = 1 "
                      "FLOP; the expectation is over the architecture probabilities)", fontsize=10, pad=30)
    return figure


def table_name(source: str | None) -> str | None:
    return None if source is None else Path(source).stem


DRAW = {"survival": survival, "alphas": alphas, "training": training, "cost": cost}
