"""The figure of a run's check (`edgenas check`, RUN/check.json): every arm's test accuracy against its FLOPs, the
searched network marked, the random arms' mean and its standard error as a band."""

from __future__ import annotations

import json
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.report.plots import new_figure

CAPTION = ("The check (edgenas check): the searched network against random architectures of the same budget band "
           "and MobileNetV2 width-scaled to the budget, each retrained from scratch with the run's recipe. Band: "
           "the random arms' mean test accuracy +/- its standard error.")


def read_check(run: Path) -> dict | None:
    """RUN/check.json, or None where the run was never checked."""
    path = Path(run) / "check.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgeNASError(f"{path} is damaged ({exc}); run `edgenas check {run}` again to rewrite it") from None


def check_figure(check: dict):
    """The check's figure (a matplotlib Figure)."""
    figure, (axes,) = new_figure(7.0, 4.2)
    mean, se = 100 * check["random_mean"], check["margin_se_points"]
    if se is not None:
        axes.axhspan(mean - se, mean + se, color="tab:gray", alpha=0.15, label="random mean +/- standard error")
    axes.axhline(mean, color="tab:gray", linewidth=1, linestyle="--")
    for arm in check["arms"]:
        searched = arm["name"] == "searched"
        axes.scatter([arm["flops"] / 1e6], [100 * arm["test_acc"]], s=80 if searched else 45, zorder=3,
                     marker="*" if searched else "o", color="tab:red" if searched else "tab:blue")
        axes.annotate(arm["name"], (arm["flops"] / 1e6, 100 * arm["test_acc"]), textcoords="offset points",
                      xytext=(6, 4), fontsize=8)
    axes.set_xlabel("FLOPs (M, fvcore, 1 multiply-add = 1 FLOP)")
    axes.set_ylabel("test accuracy (%, top-1, retrained)")
    axes.set_title(f"searched: rank {check['rank']} of {len(check['arms'])}, {check['margin_points']:+.2f} points "
                   "over the random mean", fontsize=10)
    axes.margins(x=0.2, y=0.2)
    axes.grid(alpha=0.3)
    if se is not None:
        axes.legend(fontsize=8, loc="best")
    return figure
