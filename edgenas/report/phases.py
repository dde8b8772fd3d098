"""The phases of a run on a plot's epoch axis: a dashed line where each phase starts and its label above, placed
so that no two labels overprint."""

from __future__ import annotations


def segments(rows: list[dict]) -> list[tuple[str, int, int, int | None]]:
    """Consecutive epochs of one phase: (phase, first x, last x, classes admitted), x counting epochs from 1."""
    segments: list[list] = []
    for x, row in enumerate(rows, 1):
        if segments and segments[-1][0] == row["phase"]:
            segments[-1][2] = x
        else:
            segments.append([row["phase"], x, x, row.get("classes")])
    return [tuple(s) for s in segments]


_LABEL_FONT = 8  # points
_EM_PER_CHARACTER = 0.62  # DejaVu Sans, matplotlib's default: its widest common letters (m, w) are wider


def phase_labels(segments: list[tuple[str, int, int, int | None]], total_classes: int,
                  epochs_per_inch: float) -> list[tuple[float, str]]:
    """The phase labels to write above a plot, as (x, text): left to right, each phase's full label (name and
    classes), else its name alone, where it clears the last label written by a gap; a phase too narrow for either
    (1 or 2 epochs among many) goes unlabelled, so that no two labels overprint. Widths are estimated from the
    longest line's characters at `_LABEL_FONT` points; `epochs_per_inch` is the x-axis scale."""
    gap = 0.1  # inches
    placed: list[tuple[float, str]] = []
    right = float("-inf")
    for phase, first, last, classes in segments:
        centre = (first + last) / 2
        full = phase if classes is None and phase != "retrain" else \
            f"{phase}\n{classes or total_classes}/{total_classes} classes"
        for label in dict.fromkeys((full, phase)):
            half = max(map(len, label.split("\n"))) * _EM_PER_CHARACTER * _LABEL_FONT / 72 / 2 * epochs_per_inch
            if centre - half >= right + gap * epochs_per_inch:
                placed.append((centre, label))
                right = centre + half
                break
    return placed


def mark_phases(axes_list, rows: list[dict], total_classes: int) -> None:
    spans = segments(rows)
    for _, first, _, _ in spans:
        for axes in axes_list:
            if first > 1:
                axes.axvline(first - 0.5, color="#888888", linestyle="--", linewidth=0.8)
    top = axes_list[0]
    low, high = top.get_xlim()
    inches = top.figure.get_figwidth() * top.get_position().width  # before the layout: at most the width drawn
    for x, label in phase_labels(spans, total_classes, (high - low) / inches):
        top.text(x, 1.02, label, ha="center", va="bottom", fontsize=_LABEL_FONT, transform=top.get_xaxis_transform())
