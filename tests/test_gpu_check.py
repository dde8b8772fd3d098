"""The GPU check cannot rot: `benchmarks/gpu_check.sh --cpu` runs its four steps at toy sizes on the CPU, the same
code a lent GPU runs, and its JSON holds every step's figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import nasbench_macro

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(nasbench_macro.data_dir() is None,
                    reason="no CIFAR-10 and NAS-Bench-Macro in /work/shared/data or ../shared/data beside the checkout")
def test_the_gpu_check_runs_every_step_on_the_cpu_and_records_its_figures(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    command = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu", "--work", str(tmp_path / "work")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=420)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # What comes back from a device call: at most 8 files, none deeper than $OUT itself here.
    assert sorted(p.name for p in out.iterdir()) == ["cuda_tests.txt", "gpu_check.json", "gpu_check.log", "search.txt",
                                                     "throughput.txt", "torchrun.txt"]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["mode"] == "cpu" and result["passed"] and result["seconds"] <= result["budget_seconds"]
    env_info = result["environment"]
    assert env_info["torch"] and env_info["python"] and env_info["date"] and env_info["packages"]["fvcore"]
    steps = result["steps"]
    assert list(steps) == ["cuda_tests", "throughput", "search", "torchrun"]
    assert all(s["status"] == "passed" and s["seconds"] > 0 for s in steps.values()), steps

    tests = steps["cuda_tests"]["figures"]
    assert tests["failed"] == tests["error"] == tests["skipped"] == 0 and tests["passed"] >= 6
    assert all(t["name"].endswith("[cpu]") for t in tests["tests"])

    cases = {(c["space"], c["resolution"], c["batch"]): c for c in steps["throughput"]["figures"]["cases"]}
    assert set(cases) == {("mobile", 32, 4), ("mobile-small", 32, 4)}
    for case in cases.values():
        assert case["supernet_weight_img_s"] > 0 and case["standalone_img_s"] > 0
        assert case["weight_to_standalone_min"] > 0
        path = case["paths"][0]
        assert set(path["step_ms"]) == {"supernet-weight", "supernet-arch-step", "standalone"}
        assert path["syncs"] == path["peak_memory_mib"] == "not measured on the CPU"

    search = steps["search"]["figures"]
    assert 80 < search["table_acc"] < 95 and search["table_acc"] <= search["best_within"]
    assert search["budget_use"] <= 1 and len(search["key"]) == 8 and len(search["layers"]) == 8
    assert {"probe", "warmup", "stage 0", "stage 1"} <= set(search["phases"])
    assert all(p["seconds"] > 0 and p["epochs"] >= 1 for p in search["phases"].values())
    assert search["search_seconds"] > 0 and search["tau_seconds"] > 0 and search["device"]["device"] == "cpu"
    assert search["data"]["train_images"] + search["data"]["val_images"] == 120  # 12 a class, copied

    torchrun = steps["torchrun"]["figures"]
    assert torchrun["world_size"] == 1 and torchrun["device"] == "cpu" and torchrun["search_seconds"] > 0
    log = (out / "gpu_check.log").read_text()
    assert "[4/4] torchrun: passed" in log and log.rstrip().splitlines()[-1].startswith("passed")
