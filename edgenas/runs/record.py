"""A run folder read back for presentation: `load_run` gives a `RunRecord` (what reports, plots and comparisons
show of a finished run); `list_runs` lists a folder of runs with their state.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.runs.folder import Run
from edgenas.runs.summary import RunSummary
from edgenas.space.spec import Space, get_space


@dataclass
class RunRecord:
    """What a report shows of a finished run: its files, read and checked."""

    path: Path
    config: dict
    summary: RunSummary
    history: list[dict]

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def search_rows(self) -> list[dict]:
        return [h for h in self.history if "epoch" in h and h.get("phase") != "retrain"]

    def prune_rows(self) -> list[dict]:
        return [h for h in self.history if "pruned" in h]

    def space(self) -> Space:
        """The searched space (the run's width: the mobilenetv2 baseline's architecture may be narrower)."""
        s = self.config["settings"]
        return get_space(s["space"], self.config["resolved"]["resolution"], s["width_mult"])

    def final_probs(self) -> list[list[float]] | None:
        """The architecture probabilities after the last stage: recorded in history.jsonl, or (runs written before
        history held them) in the checkpoint; None for strategies without a supernet."""
        rows = [h for h in self.history if "probs" in h and h.get("phase") != "retrain"]
        if rows:
            return rows[-1]["probs"]
        if self.summary.strategy in ("random", "mobilenetv2"):
            return None
        state = Run(self.path).load_checkpoint()
        return None if state is None else state.get("final_probs")


def load_run(path: str | Path) -> RunRecord:
    """A finished run folder; anything else is one `EdgeNASError` naming the folder and what is missing."""
    path = Path(path)
    if path.is_dir() and not (path / "config.json").is_file():
        raise EdgeNASError(f"{path} is not a run folder: it has no config.json (run folders are written by "
                           "`edgenas search`)")
    run = Run.open(path)
    if not run.has("summary.json"):
        raise EdgeNASError(f"run {path} has not finished (no summary.json); finish it with "
                           f"`edgenas search --resume {path}`")
    config, summary = run.config(), run.read("summary.json", "run summary")
    try:
        history = run.history()
    except json.JSONDecodeError as exc:
        raise EdgeNASError(f"{run.file('history.jsonl')} is damaged: a line is not JSON ({exc.msg})") from None
    for key, data in (("settings", config), ("arch", summary)):
        if not isinstance(data, dict) or key not in data:
            raise EdgeNASError(f"run {path}: {'config' if key == 'settings' else 'summary'}.json has no {key!r}")
    return RunRecord(run.path, config, RunSummary.from_dict(summary, str(run.file("summary.json"))), history)


def list_runs(root: str | os.PathLike = "runs") -> list[dict]:
    """Every run folder in `root` (oldest first): name, strategy, budgets, FLOPs, test accuracy and state.

    State: `finished` (summary.json written), `retraining` (searched, arch.json written, retraining not finished:
    stopped, or running now) or `interrupted` (the search not finished: stopped, or running now). A folder whose
    files cannot be read is listed with the reason as its state.
    """
    root = Path(root)
    if not root.is_dir():
        raise EdgeNASError(f"no runs folder {root} (runs are written there by `edgenas search`)")
    found = []
    for path in sorted((p for p in root.iterdir() if (p / "config.json").is_file()),
                       key=lambda p: (p / "config.json").stat().st_mtime):
        row = {"run": str(path), "strategy": None, "flops_budget": None, "latency_budget_ms": None, "flops": None,
               "test_acc": None, "state": None}
        try:
            run = Run.open(path)
            config = run.config()
            budgets = config.get("resolved", {}).get("budgets", {})
            row.update(strategy=config.get("settings", {}).get("strategy"), flops_budget=budgets.get("flops"),
                       latency_budget_ms=budgets.get("latency_ms"))
            if run.has("summary.json"):
                summary = RunSummary.from_dict(run.read("summary.json", "run summary"), str(run.file("summary.json")))
                row.update(state="finished", flops=summary.flops, test_acc=summary.test_acc)
            else:
                row["state"] = "retraining" if run.has("arch.json") else "interrupted"
        except EdgeNASError as exc:
            row["state"] = f"unreadable: {exc}"
        found.append(row)
    return found
