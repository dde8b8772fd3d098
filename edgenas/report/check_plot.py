"""The figure of a run's check (`edgenas check`, RUN/check.json): every arm's test accuracy against its FLOPs (with
`--seeds K`, each retraining's as a small point and the mean +/- the standard deviation as a bar), the searched
network marked, the random arms' mean and its standard error as a band."""

from __future__ import annotations

import json
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.report.plots import new_figure

CAPTION = ("The check (edgenas check): the searched network against random architectures of the same budget band "
           "and MobileNetV2 width-scaled to the budget, each retrained from scratch with the run's recipe. Band: "
           "the random arms' mean test accuracy +/- its standard error. Retrained several times (--seeds): small "
           "points, each retraining; bars, the mean +/- the standard deviation over retraining seeds.")


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
    mean = 100 * check["random_mean"]
    se = check.get("random_se_points", check["margin_se_points"])  # with one retraining, the random mean's alone
    if se is not None:
        axes.axhspan(mean - se, mean + se, color="tab:gray", alpha=0.15, label="random mean +/- standard error")
    axes.axhline(mean, color="tab:gray", linewidth=1, linestyle="--")
    for arm in check["arms"]:
        _arm(axes, arm)
    axes.set_xlabel("FLOPs (M, fvcore, 1 multiply-add = 1 FLOP)")
    axes.set_ylabel("test accuracy (%, top-1, retrained)")
    margin = f"{check['margin_points']:+.2f}"
    if check.get("seeds", 1) > 1:  # the searched network's retraining noise is in its standard error
        margin += f" +/- {check['margin_se_points']:.2f} (s.e.)"
    retrained = f", {check['seeds']} retrainings each" if check.get("seeds", 1) > 1 else ""
    axes.set_title(f"searched: rank {check['rank']} of {len(check['arms'])}, {margin} points over the random "
                   f"mean{retrained}", fontsize=10)
    axes.margins(x=0.2, y=0.2)
    axes.grid(alpha=0.3)
    if se is not None:
        axes.legend(fontsize=8, loc="best")
    return figure


def _arm(axes, arm: dict) -> None:
    """One arm: its accuracy (the mean of its retrainings) and, retrained several times, each of them and the mean
    +/- their standard deviation."""
    searched = arm["name"] == "searched"
    color, x, y = "tab:red" if searched else "tab:blue", arm["flops"] / 1e6, 100 * arm["test_acc"]
    if arm.get("test_accs"):
        axes.scatter([x] * len(arm["test_accs"]), [100 * a for a in arm["test_accs"]], s=12, color=color, alpha=0.5,
                     zorder=2)
        axes.errorbar([x], [y], yerr=[100 * arm["test_acc_std"]], color=color, capsize=3, linewidth=1, zorder=2)
    axes.scatter([x], [y], s=80 if searched else 45, zorder=3, marker="*" if searched else "o", color=color)
    axes.annotate(arm["name"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
