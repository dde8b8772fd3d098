"""The GPU check's core (benchmarks/gpu_check.sh runs it): prove edgenas's GPU paths on a lent GPU and bring back
every figure in one call of at most 8 minutes; with --cpu, the same steps at toy sizes on the CPU, so that CI and
every session can prove the check itself works before a GPU comes.

Steps, each with its own time box inside the whole run's; a step that fails or runs out of time is recorded as such
and the next one runs:
1. `cuda_tests`: `pytest -m cuda`, the tests of the CUDA paths (--cpu: their CPU counterparts).
2. `throughput`: benchmarks/gpu_throughput.py: supernet weight and architecture steps against the standalone network
   of the same path, images per second, peak memory, host synchronisations per step.
3. `search`: one `edgenas search` of the `macro` space on CIFAR-10 with the device's defaults and no retraining,
   through benchmarks/search_quality.py (profile `gpu`; --cpu: `toy`, on a handful of images a class), scored on
   NAS-Bench-Macro: the table accuracy and the wall time of each phase.
4. `torchrun`: one small search launched by torchrun with one process: the launch itself (a world of one joins no
   process group; NCCL and DDP are exercised by a cuda test of step 1).
Writes into --out: gpu_check.json (every figure, rewritten after each step), gpu_check.log (a short account, also
printed) and STEP.txt (each step's whole output).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = 1
# Seconds: the whole run, and each step's box within it (a step gets the smaller of its box and what is left).
# On the CPU they only keep a stuck step from hanging CI: its steps take 10-20 s each on a quiet 2-core machine, and
# three times that when other work shares the cores, which must not fail the check.
BUDGET = {"gpu": 455, "cpu": 360}
BOXES = {"gpu": {"cuda_tests": 90, "throughput": 120, "search": 200, "torchrun": 45},
         "cpu": {"cuda_tests": 90, "throughput": 90, "search": 90, "torchrun": 90}}
LEAST = 20  # a step is not started with fewer seconds left
TOY_IMAGES = {"train": 12, "test": 3}  # per class, copied for --cpu's search
BUDGET_SHARE = 0.6  # the search's FLOPs budget, a share of the largest macro network's
TORCHRUN_SEARCH = ["--space", "tiny", "--schedule", "1.0:1", "--probe-epochs", "0", "--warmup-epochs", "1",
                   "--score-paths", "8", "--retrain-epochs", "0", "--batch-size", "128", "--flops", "250K",
                   "--no-report"]
TORCHRUN_NOTE = ("a world of one: edgenas joins no process group there (Ranks.many is false), so this proves the "
                 "launch only; NCCL and DDP run in cuda_tests (test_a_ddp_replica_trains_the_supernet_on_the_device_"
                 "backend)")


@dataclass
class Step:
    name: str
    command: list[str]
    read: Callable[[Path], dict]  # figures from the work folder once the command has ended (also after a failure)
    env: dict | None = None
    skip: str | None = None  # why it cannot run here


class Check:
    def __init__(self, mode: str, out: Path, work: Path, python: str):
        self.mode, self.out, self.work, self.python = mode, out, work, python
        self.started = time.monotonic()
        self.deadline = self.started + BUDGET[mode]
        self.log_file = out / "gpu_check.log"
        self.result: dict = {"schema": SCHEMA, "mode": mode, "budget_seconds": BUDGET[mode], "steps": {}}

    def log(self, line: str = "") -> None:
        print(line, flush=True)
        with self.log_file.open("a") as handle:
            handle.write(line + "\n")

    def save(self) -> None:
        self.result["seconds"] = round(time.monotonic() - self.started, 1)
        path = self.out / "gpu_check.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, indent=1) + "\n")
        tmp.replace(path)

    def run(self, number: int, step: Step) -> dict:
        left = self.deadline - time.monotonic()
        box = min(BOXES[self.mode][step.name], left)
        record: dict = {"command": " ".join(step.command), "box_seconds": round(box, 1)}
        if step.skip or box < LEAST:
            record.update(status="skipped", reason=step.skip or f"{left:.0f} s left of the run's {BUDGET[self.mode]} s")
        else:
            output = self.out / f"{step.name}.txt"
            start, used = time.monotonic(), _children_cpu()
            code = _run(step.command, output, box, {**os.environ, **(step.env or {})})
            record["seconds"] = round(time.monotonic() - start, 1)
            record["cpu_seconds"] = round(_children_cpu() - used, 1)  # user + system, all its processes
            record["returncode"] = code
            try:
                record["figures"] = step.read(self.work)
            except Exception as exc:  # a step that died early leaves nothing to read: say so, go on
                record["figures"] = {}
                record["read_error"] = f"{type(exc).__name__}: {exc}"
            record["status"] = ("timed out" if code is None else "passed" if code == 0 and record["figures"]
                                and not record.get("read_error") else "failed")
            if record["status"] != "passed":
                record["output_tail"] = _tail(output, 40)
        self.result["steps"][step.name] = record
        self.save()
        self.log(f"[{number}/4] {step.name}: {record['status']}"
                 + (f" in {record['seconds']} s ({record['cpu_seconds']} s of CPU)" if "seconds" in record else "")
                 + (f" ({record['reason']})" if "reason" in record else ""))
        try:
            lines = SUMMARIES[step.name](record.get("figures") or {})
        except Exception as exc:  # the JSON holds the figures; a summary that cannot be written must not stop the run
            lines = [f"(no summary: {type(exc).__name__}: {exc})"]
        for line in lines:
            self.log(f"      {line}")
        if record["status"] in ("failed", "timed out"):
            for line in record["output_tail"][-15:]:
                self.log(f"    | {line}")
        return record


def _run(command: list[str], output: Path, timeout: float, env: dict) -> int | None:
    """Run `command` in its own process group with its output in `output`; its return code, or None when it ran out
    of time (then its whole group is stopped: torchrun's and pytest's children too)."""
    with output.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                   start_new_session=True)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            handle.write(f"\n[gpu_check: stopped after {timeout:.0f} s, the step's time box]\n")
            return None


def _children_cpu() -> float:
    """CPU seconds (user and system) of the ended child processes so far: what a step costs, whatever the load."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


# ---------------------------------------------------------------- the environment


def environment() -> dict:
    import importlib.metadata as metadata

    import torch

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "python": platform.python_version(),
            "platform": platform.platform(), "cpu": _cpu_model(), "cores": os.cpu_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": None, "gpu": None,
            "packages": {name: version(name) for name in ("torchvision", "onnx", "onnxruntime", "onnxscript",
                                                          "fvcore", "iopath", "numpy", "pytest")},
            "fvcore_from": _origin("fvcore"), "commit": _commit()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["cudnn"] = torch.backends.cudnn.version()
        info["gpu"] = {"name": props.name, "count": torch.cuda.device_count(),
                       "memory_mib": round(props.total_memory / 2**20), "capability": f"{props.major}.{props.minor}",
                       "multiprocessors": props.multi_processor_count, "driver": _driver(),
                       "bf16": torch.cuda.is_bf16_supported()}
    return info


def _origin(module: str) -> str | None:
    """Where `module` is imported from (the carried wheels' folder, or the environment's own)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    return None if spec is None or spec.origin is None else str(Path(spec.origin).parent.parent)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _driver() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None
    return None


def _commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, timeout=10)
        if done.returncode == 0:
            return done.stdout.strip()
    return None


# ---------------------------------------------------------------- the steps


def steps(mode: str, python: str, work: Path) -> list[Step]:
    cpu = mode == "cpu"
    # Toy sizes on one thread: more threads only add overhead there, and on a shared machine a lot of it.
    env = {"OMP_NUM_THREADS": "1"} if cpu else {}
    junit = work / "cuda_tests.xml"
    tests = ([python, "-m", "pytest", "tests/test_device_paths.py", "-m", "not cuda"] if cpu
             else [python, "-m", "pytest", "-m", "cuda", "--continue-on-collection-errors"])
    tests += ["-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    throughput = [python, "benchmarks/gpu_throughput.py", "--out", str(work / "throughput.json"), *(["--cpu"] * cpu)]
    data, why = search_data(mode, work)
    search = [python, "benchmarks/search_quality.py", "--profile", "toy" if cpu else "gpu", "--arms", "danas",
              "--budgets", str(BUDGET_SHARE), "--seeds", "0", "--tag", f"gpu-check-{mode}", "--device",
              "cpu" if cpu else "auto", "--results", str(work / "search_quality.json"), "--runs", str(work / "runs")]
    search += ["--tau-archs", "8", "--tau-batches", "1"] if cpu else []
    torchrun = [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "edgenas",
                "search", *TORCHRUN_SEARCH, "--device", "cpu" if cpu else "auto", "--out", str(work / "torchrun-run"),
                "--json"]
    return [Step("cuda_tests", tests, lambda w: read_tests(junit), env),
            Step("throughput", throughput, lambda w: json.loads((w / "throughput.json").read_text()), env),
            Step("search", search, read_search, {**env, "EDGENAS_SHARED_DATA": str(data)} if data else env,
                 skip=why),
            Step("torchrun", torchrun, read_torchrun, env)]


def search_data(mode: str, work: Path) -> tuple[Path | None, str | None]:
    """The folder (cifar10/, nas-bench-macro/) the search reads: on a GPU the carried one (or the shared data); with
    --cpu a copy of the first few images a class, so that nothing decodes 60,000 images to keep 150."""
    from benchmarks.nasbench_macro import FILE, data_dir

    source = data_dir()
    if source is None or not (source / "cifar10" / "train").is_dir():
        return None, ("no CIFAR-10 and NAS-Bench-Macro here: run benchmarks/gpu_prepare.sh (carry .gpu), or put "
                      "the shared data at ../shared/data")
    if mode == "gpu":
        return source, None
    toy = work / "toy-data"
    for split, count in TOY_IMAGES.items():
        for folder in sorted(p for p in (source / "cifar10" / split).iterdir() if p.is_dir()):
            target = toy / "cifar10" / split / folder.name
            target.mkdir(parents=True, exist_ok=True)
            for image in sorted(folder.iterdir())[:count]:
                shutil.copy2(image, target / image.name)
    (toy / "nas-bench-macro").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "nas-bench-macro" / FILE, toy / "nas-bench-macro" / FILE)
    return toy, None


def read_tests(junit: Path) -> dict:
    suite = ET.parse(junit).getroot()
    tests = []
    for case in suite.iter("testcase"):
        outcome, message = "passed", None
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                message = (found.get("message") or "")[:300]
        tests.append({"name": f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}", "outcome": outcome,
                      "seconds": round(float(case.get("time", 0)), 2), **({"message": message} if message else {})})
    counts = {outcome: sum(t["outcome"] == outcome for t in tests) for outcome in ("passed", "failed", "error",
                                                                                     "skipped")}
    return {**counts, "tests": tests}


def read_search(work: Path) -> dict:
    """The search's row of search_quality.json and its run's phases; after a failure or timeout, the phases the
    run folder holds (the row comes only once the search and the ranking are done)."""
    runs = sorted((work / "runs").glob("*/")) if (work / "runs").is_dir() else []
    figures: dict = {}
    results = work / "search_quality.json"
    if results.is_file():
        row = json.loads(results.read_text())["rows"][0]
        keep = ("key", "table_acc", "regret", "percentile", "flops", "budget_flops", "budget_use", "search_seconds",
                "search_wall_seconds", "image_steps", "inherited_val_acc", "tau", "tau_archs", "tau_seconds")
        figures = {k: row.get(k) for k in keep}
        figures["setup_seconds"] = row["search_wall_seconds"] - row["search_seconds"]  # data, FLOPs table, plan
        summary = json.loads(results.read_text())["summary"][0]
        figures.update({k: summary[k] for k in ("best_within", "random_mean", "matched_random_mean")})
    if runs:
        run = runs[-1]
        figures["phases"] = phases(run / "history.jsonl")
        if (run / "config.json").is_file():
            config = json.loads((run / "config.json").read_text())
            resolved = config["resolved"]
            figures["device"] = {k: resolved.get(k) for k in ("device", "amp", "memory_format", "compile")}
            figures["data"] = {k: v for k, v in resolved["data"].items() if k.endswith("_images")}
            settings = config["settings"]
            figures["settings"] = {k: settings[k] for k in ("schedule", "epochs_scale", "batch_size", "warmup_epochs",
                                                            "score_paths", "train_per_class", "test_per_class")}
        if (run / "arch.json").is_file():
            figures["layers"] = json.loads((run / "arch.json").read_text())["layers"]
    return figures


def phases(history: Path) -> dict:
    """Per phase of the history (probe, warm-up, each stage, the final choice): seconds, epochs, images; a stage's
    pruning (its candidates scored on search-validation batches) counted apart."""
    out: dict = {}
    if not history.is_file():
        return out
    for line in history.read_text().splitlines():
        row = json.loads(line)
        phase = out.setdefault(row.get("phase", "?"), {"seconds": 0.0, "epochs": 0, "images": 0})
        if row.get("epoch") is None:  # a stage's pruning, or a candidate of the final choice
            phase["pruning_seconds"] = phase.get("pruning_seconds", 0.0) + row.get("seconds", 0.0)
        else:
            phase["epochs"] += 1
            phase["images"] += row.get("images", 0) + row.get("arch_images", 0)
        phase["seconds"] += row.get("seconds", 0.0)
    return {name: {k: round(v, 2) if isinstance(v, float) else v for k, v in p.items()} for name, p in out.items()}


def read_torchrun(work: Path) -> dict:
    run = work / "torchrun-run"
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    return {"world_size": config["resolved"]["world_size"], "device": config["resolved"]["device"],
            "amp": config["resolved"]["amp"], "search_seconds": summary.get("search_seconds"),
            "retrain_seconds": summary.get("retrain_seconds"), "test_acc": summary.get("test_acc"),
            "note": TORCHRUN_NOTE}


# ---------------------------------------------------------------- the log's lines


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _tests_lines(f: dict) -> list[str]:
    if not f:
        return []
    lines = [f"{f['passed']} passed, {f['failed']} failed, {f['error']} errors, {f['skipped']} skipped"]
    return lines + [f"{t['outcome']}: {t['name']}: {t.get('message', '')}" for t in f["tests"]
                    if t["outcome"] in ("failed", "error")]


def _throughput_lines(f: dict) -> list[str]:
    lines = []
    for c in f.get("cases", []):
        lines.append(f"{c['space']} at {c['resolution']}, batch {c['batch']}: supernet weight step "
                     f"{c['supernet_weight_img_s']:,.0f} img/s, architecture step "
                     f"{_number(c['supernet_arch_step_img_s'], ',.0f')} img/s, standalone "
                     f"{c['standalone_img_s']:,.0f} img/s; "
                     f"weight/standalone {c['weight_to_standalone_min']:.2f} (least of {len(c['paths'])} paths)")
        first = c["paths"][0]
        if isinstance(first["peak_memory_mib"], dict):
            lines.append("  peak memory (MiB): " + ", ".join(f"{k} {v:,.0f}" for k, v in
                                                             first["peak_memory_mib"].items()))
        if isinstance(first.get("syncs"), dict):
            lines.append("  host syncs per step: " + ", ".join(
                f"{k} {_number(v['per_step'], '.1f')}" for k, v in first["syncs"].items()))
    return lines


def _search_lines(f: dict) -> list[str]:
    lines = []
    if "table_acc" in f:
        lines.append(f"table accuracy {f['table_acc']:.2f}% (NAS-Bench-Macro, mean of 3 trainings; best within the "
                     f"budget {f['best_within']:.2f}%, random within it {f['random_mean']:.2f}%), key {f['key']}, "
                     f"tau {_number(f['tau'], '.2f')} over {f['tau_archs']} architectures")
        lines.append(f"wall: search {f['search_seconds']:.0f} s, set-up {f['setup_seconds']:.0f} s, ranking "
                     f"{f['tau_seconds']:.0f} s")
    if f.get("phases"):
        lines.append("phases: " + ", ".join(f"{name} {p['seconds']:.1f} s" for name, p in f["phases"].items()))
    return lines


def _torchrun_lines(f: dict) -> list[str]:
    return [f"world size {f['world_size']} on {f['device']} ({f['amp']}); {TORCHRUN_NOTE}"] if f else []


SUMMARIES = {"cuda_tests": _tests_lines, "throughput": _throughput_lines, "search": _search_lines,
             "torchrun": _torchrun_lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the same steps at toy sizes on the CPU")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, .log and each step's "
                        "output")
    parser.add_argument("--work", type=Path, default=None, help="folder for runs and intermediate files (default: "
                        "a temporary one, removed at the end)")
    parser.add_argument("--only", nargs="+", choices=list(SUMMARIES), default=None, metavar="STEP",
                        help=f"only these steps, to redo what failed within a GPU's minutes: {', '.join(SUMMARIES)}")
    args = parser.parse_args()
    mode = "cpu" if args.cpu else "gpu"
    import torch

    if mode == "gpu" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible; run benchmarks/gpu_check.sh --cpu for the CPU check",
              file=sys.stderr)
        raise SystemExit(1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.log").unlink(missing_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-work-"))
    work.mkdir(parents=True, exist_ok=True)
    check = Check(mode, args.out, work, sys.executable)
    check.result["environment"] = env = environment()
    gpu = env["gpu"]
    check.log(f"gpu_check ({mode}) {env['date']}: "
              + (f"{gpu['name']}, driver {gpu['driver']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, " if gpu else
                 f"CPU {env['cpu']} ({env['cores']} cores), ")
              + f"torch {env['torch']}, Python {env['python']}, fvcore {env['packages']['fvcore']}")
    check.save()
    try:
        todo = steps(mode, sys.executable, work)
        for step in todo:
            if args.only and step.name not in args.only:
                step.skip = f"not asked for: --only {' '.join(args.only)}"
        records = [check.run(i, step) for i, step in enumerate(todo, 1)]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    passed = all(r["status"] == "passed" for r in records if not r.get("reason", "").startswith("not asked"))
    check.result["passed"] = passed
    check.save()
    check.log(f"{'passed' if passed else 'NOT passed'}: {check.result['seconds']:.0f} s of {BUDGET[mode]}; "
              f"figures in {args.out / 'gpu_check.json'}")
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
