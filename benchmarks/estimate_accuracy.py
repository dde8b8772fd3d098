"""Benchmark: how close `edgenas search`'s time estimates come to the time the search actually took.

Runs the CLI as a user would, each search in a fresh process with CI=true (so that progress comes as plain lines on
stderr), and stamps every stderr line with the seconds since the process was started. For each estimate line
("estimate: about 3 min left ...", "estimate updated: ...") it records the time it was said, the time it
stated (the rounded figure a user reads) and the time that was actually left then (until the process exited), and
their ratio (stated / actual: above 1 too high, below 1 too low). The cases (issue 33's acceptance):
- `default`: `edgenas search` with no arguments (the embedded digits; its run folder lands in a temporary folder);
- `small`: `edgenas search --epochs-scale 0.25 --train-per-class 16`: 160 images of the digits (16 per class) for
  the search's training and search-validation splits (140 and 20), the test split as usual (359 images).

A quiet machine is needed for a meaningful answer: the estimate extrapolates from the epochs measured so far, and
other work that starts or stops later changes the actual time, not the estimate.

    .venv/bin/python benchmarks/estimate_accuracy.py [--cases default small] [--out FILE]
    .venv/bin/python benchmarks/estimate_accuracy.py --quick     # smoke test: the small case, 4 retraining epochs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CASES = {"default": [], "small": ["--epochs-scale", "0.25", "--train-per-class", "16"]}
QUICK = ["--retrain-epochs", "4"]  # --quick: the small case only, shortened (the script works; no accuracy claim)
ESTIMATE = re.compile(r"^(estimate(?: updated)?): about (.+?) left")


def parse_duration(text: str) -> float:
    """Seconds of a duration as `edgenas search` writes it: `45 s`, `12 min`, `1 h 5 min`."""
    match = re.fullmatch(r"(?:(\d+) h )?(\d+) (s|min)", text.strip())
    if match is None:
        raise ValueError(f"unreadable duration {text!r}")
    hours, value, unit = match.groups()
    return 3600 * int(hours or 0) + int(value) * (60 if unit == "min" else 1)


def run_case(name: str, arguments: list[str], workdir: Path) -> dict:
    """One search as a subprocess of the CLI: every stderr line stamped, the estimates against the time left."""
    folder = workdir / name
    folder.mkdir()
    command = [sys.executable, "-m", "edgenas", "search", *arguments]
    env = {**os.environ, "CI": "true", "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    lines: list[tuple[float, str]] = []
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, bufsize=1)
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.extend(process.stdout), daemon=True)
    reader.start()
    for line in process.stderr:
        lines.append((time.monotonic() - start, line.rstrip("\n")))
        if ESTIMATE.match(line) or line.startswith("plan: "):
            print(f"  {lines[-1][0]:6.1f} s  {lines[-1][1]}", flush=True)
    process.wait()
    wall = time.monotonic() - start
    reader.join()
    if process.returncode != 0:
        tail = "\n".join(text for _, text in lines[-10:])
        raise SystemExit(f"case {name}: `{' '.join(command[1:])}` exited {process.returncode}:\n{tail}")
    estimates = []
    for at, text in lines:
        match = ESTIMATE.match(text)
        if match:
            stated = parse_duration(match.group(2))
            actual = wall - at
            estimates.append({"kind": match.group(1), "at_s": round(at, 2), "stated_s": stated,
                              "actual_left_s": round(actual, 2), "ratio": round(stated / actual, 3), "line": text})
    runs = [p for p in folder.rglob("summary.json")]
    summary = json.loads(runs[0].read_text()) if runs else {}
    plan = next((text for _, text in lines if text.startswith("plan: ")), None)
    return {"case": name, "command": "edgenas search " + " ".join(arguments), "wall_s": round(wall, 2),
            "plan": plan, "estimates": estimates,
            "search_seconds": summary.get("search_seconds"), "retrain_seconds": summary.get("retrain_seconds"),
            "search_images": summary.get("search_images"),
            "stderr": [[round(at, 2), text] for at, text in lines if "] loss " not in text],
            "epoch_lines": [[round(at, 2), text] for at, text in lines if "] loss " in text]}


def describe(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def table(rows: list[dict]) -> str:
    lines = ["| case | first estimate (said at) | actual time left then | ratio | updated estimate: ratio | "
             "whole command |", "|---|---|---|---|---|---|"]
    for row in rows:
        first = row["estimates"][0] if row["estimates"] else None
        later = ", ".join(f"{e['ratio']:.2f} (at {describe(e['at_s'])})" for e in row["estimates"][1:]) or "-"
        if first is None:
            lines.append(f"| {row['case']} | none | - | - | - | {describe(row['wall_s'])} |")
            continue
        lines.append(f"| {row['case']} | {describe(first['stated_s'])} (at {describe(first['at_s'])}) | "
                     f"{describe(first['actual_left_s'])} | {first['ratio']:.2f} | {later} | "
                     f"{describe(row['wall_s'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["default", "small"])
    parser.add_argument("--quick", action="store_true", help="smoke test: the small case with 4 retraining epochs")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON result (default: benchmarks/results/estimate_accuracy[_quick].json)")
    args = parser.parse_args()
    cases = {"small": CASES["small"] + QUICK} if args.quick else {name: CASES[name] for name in args.cases}
    out = args.out or Path(__file__).parent / "results" / f"estimate_accuracy{'_quick' if args.quick else ''}.json"

    import torch

    from edgenas.cost.notes import host_info
    from edgenas.version import __version__

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    with tempfile.TemporaryDirectory(prefix="estimate-accuracy-") as workdir:
        for name, arguments in cases.items():
            print(f"running {name}: edgenas search {' '.join(arguments)}", flush=True)
            rows.append(run_case(name, arguments, Path(workdir)))
            print(f"  {describe(rows[-1]['wall_s'])}; estimates: "
                  + ("; ".join(e["line"].split(",")[0] for e in rows[-1]["estimates"]) or "none"), flush=True)
    print(table(rows))
    document = {"machine": host_info(), "load_average_after": os.getloadavg(), "torch": torch.__version__,
                "edgenas": __version__, "python": platform.python_version(), "started": started,
                "quick": args.quick, "rows": rows,
                "method": "stated: the figure of the estimate line (as rounded for the user); actual: from that "
                          "line to the exit of the process; ratio stated / actual"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
