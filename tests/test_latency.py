"""Latency tables: profiling for real with ONNX Runtime on the tiny space (FP32 and INT8), prediction, refusal,
import/export, and the note on a table measured on another CPU."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import CHEAP, CHEAP_ARGS, default_sigint
from typer.testing import CliRunner

from edgenas.cli.app import app
from edgenas.cost.calibration import CALIBRATIONS, calibrate, fit, kendall_tau
from edgenas.cost.flops import cost_table
from edgenas.cost.latency import arch_keys, load_table, space_keys, validate_table
from edgenas.cost.notes import host_info, host_note, miss_note
from edgenas.cost.presets import preset, random_arch
from edgenas.errors import EdgeNASError
from edgenas.profiling.device_timings import export_blocks, import_timings
from edgenas.profiling.measure import OrtBackend
from edgenas.profiling.profiler import default_table_path, profile
from edgenas.space.arch import load_arch
from edgenas.space.pieces import block_key, head_key, space_pieces, stem_key
from edgenas.space.spec import get_space

FAST = {"warmup": 2, "repeats": 5, "passes": 2, "progress": False}


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("tables") / "tiny-t1.json"
    path, table = profile("tiny-t1", get_space("tiny"), validate=5, out=out, **FAST)
    return path, table


def test_profile_writes_a_valid_table_with_every_key(tiny_table):
    path, _table = tiny_table
    data = json.loads(path.read_text())
    assert set(space_keys(get_space("tiny"))) == set(data["entries"])
    validate_table(data, str(path))
    assert data["runtime"]["backend"] == "onnxruntime" and data["runtime"]["threads"] == 1
    assert data["host"]["cores"] == os.cpu_count() and data["space_hash"] == get_space("tiny").hash
    for entry in data["entries"].values():
        assert entry["median_ms"] > 0 and entry["p90_ms"] > 0 and entry["std_ms"] >= 0
        assert entry["n"] == FAST["repeats"] * FAST["passes"] and len(entry["pass_medians_ms"]) == FAST["passes"]
        assert entry["median_ms"] == min(entry["pass_medians_ms"])
    validation = data["validation"]
    assert validation["count"] == 7 and len(validation["networks"]) == 7  # 5 random + smallest + largest
    for key in ("median_abs_error_pct", "p95_abs_error_pct", "within_10pct", "kendall_tau_table"):
        assert validation[key] is not None
    # Spread over the FLOPs range: the networks cover most of the distance from the smallest to the largest.
    flops = [n["flops"] for n in validation["networks"]]
    costs = cost_table(get_space("tiny"))
    low, high = (costs.flops(preset(p, get_space("tiny"), 1000)) for p in ("smallest", "largest"))
    assert max(flops) - min(flops) >= 0.5 * (high - low)
    # Both head sizes the table measures, so the calibration covers 10-class searches too; the ends at the ends.
    classes = {n["name"]: n["num_classes"] for n in validation["networks"]}
    assert set(classes.values()) == {10, 1000} and classes["smallest"] == 10 and classes["largest"] == 1000


def test_predict_is_the_sum_of_entries_plus_calibration(tiny_table):
    _, table = tiny_table
    space = get_space("tiny")
    for seed in range(10):
        arch = random_arch(space, 10, seed)
        entries = table.data["entries"]
        raw = (entries[stem_key(space)]["median_ms"] + entries[head_key(space, 10)]["median_ms"]
               + sum(entries[key]["median_ms"] for key in arch_keys(arch, space)))
        calibration = table.data["calibration"]
        assert table.raw_ms(arch) == pytest.approx(raw)
        params = cost_table(space).params(arch) / 1e6
        pieces = 2 + len(arch_keys(arch, space))
        over = max(0.0, params - calibration.get("cache_mparams", 0.0))
        assert table.predict(arch) == pytest.approx(calibration["scale"] * raw + calibration["offset_ms"]
                                                    + calibration["ms_per_mparam"] * params
                                                    + calibration.get("ms_per_call", 0.0) * pieces
                                                    + calibration.get("ms_per_mparam_over_cache", 0.0) * over)


def test_head_cost_is_interpolated_between_the_measured_class_counts(tiny_table):
    _, table = tiny_table
    space = get_space("tiny")
    low, high = (table.data["entries"][head_key(space, c)]["median_ms"] for c in (10, 1000))
    assert table.head_ms(space, 505) == pytest.approx((low + high) / 2)


def test_a_table_of_another_space_or_resolution_is_refused(tiny_table):
    _, table = tiny_table
    other = preset("smallest", get_space("tiny", 32), 10)
    with pytest.raises(EdgeNASError) as info:
        table.predict(other)
    message = str(info.value)
    assert "tiny at 16x16" in message and "tiny at 32x32" in message
    with pytest.raises(EdgeNASError, match="mobile-small at 32x32"):
        table.predict(preset("mobilenetv2", get_space("mobile-small"), 10))


def test_a_missing_entry_is_named(tiny_table, tmp_path):
    path, _ = tiny_table
    data = json.loads(path.read_text())
    arch = preset("largest", get_space("tiny"), 10)
    missing = arch_keys(arch, get_space("tiny"))[0]
    del data["entries"][missing]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(EdgeNASError, match=f"no entry '{missing}'"):
        load_table(str(broken)).predict(arch)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("entries"), "missing key 'entries'"),
    (lambda d: d.__setitem__("schema", 7), "schema 7 is not supported"),
    (lambda d: d["entries"].__setitem__("x", {"median_ms": "fast"}), "entry 'x' has no valid 'median_ms'"),
])
def test_malformed_tables_are_refused(tiny_table, tmp_path, change, message):
    path, _ = tiny_table
    data = json.loads(path.read_text())
    change(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(EdgeNASError, match=message):
        load_table(str(bad))


def test_export_blocks_then_import_timings_reproduces_the_table(tiny_table, tmp_path):
    _path, table = tiny_table
    folder = tmp_path / "blocks"
    manifest_path = export_blocks("tiny-t1", get_space("tiny"), folder, validate=5, progress=False)
    manifest = json.loads(manifest_path.read_text())
    assert {p["key"] for p in manifest["pieces"]} == set(table.data["entries"])
    for record in manifest["pieces"]:
        assert (folder / record["file"]).stat().st_size > 0
    # Time the networks like a device would (any runner): here ONNX Runtime on the exported files themselves.
    import numpy as np

    from exporters.runtimes.onnxruntime import make_session
    from exporters.timing import time_calls

    network_ms = {}
    for record in manifest["networks"]:
        session = make_session(str(folder / record["file"]))
        x = np.zeros(record["input_shape"], np.float32)
        network_ms[record["key"]] = float(np.median(time_calls(session.run, (None, {record["input_name"]: x}), 2, 5)))
    timings = tmp_path / "timings.csv"
    with timings.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "median_ms", "p90_ms"])
        for key, entry in table.data["entries"].items():
            writer.writerow([key, entry["median_ms"], entry["p90_ms"]])
        for key, ms in network_ms.items():
            writer.writerow([key, ms, ""])
    out = tmp_path / "imported.json"
    _, imported = import_timings("tiny-device", timings, manifest_path, out)
    assert set(imported.data["entries"]) == set(table.data["entries"])
    for key, entry in table.data["entries"].items():
        assert imported.data["entries"][key]["median_ms"] == pytest.approx(entry["median_ms"])
    assert imported.data["validation"]["count"] == 7
    arch = random_arch(get_space("tiny"), 10, 1)
    assert imported.raw_ms(arch) == pytest.approx(table.raw_ms(arch))


def test_import_refuses_incomplete_timings(tmp_path):
    manifest_path = export_blocks("d", get_space("tiny"), tmp_path / "blocks", validate=0, progress=False)
    timings = tmp_path / "t.json"
    timings.write_text(json.dumps({"stem:3x16x16:8:s2:8": 0.01}))
    with pytest.raises(EdgeNASError, match=r"has no timing for .*pieces missing"):
        import_timings("d", timings, manifest_path, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_int8_blocks_are_quantised_and_their_manifest_decides_the_table(tmp_path, monkeypatch):
    """`--int8 --export-blocks` writes the QDQ files `edgenas export --int8` ships; the manifest's precision is the
    imported table's (and its default path's), and `--int8` with an FP32 manifest is refused, naming it."""
    from exporters.runtimes import runtime
    from exporters.runtimes.onnxruntime import RECIPE

    manifest_path = export_blocks("d", get_space("tiny"), tmp_path / "blocks", int8=True, validate=0, progress=False)
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["runtime"], manifest["format"], manifest["precision"]) == ("onnxruntime", "onnx", "int8")
    assert manifest["quantization"] == RECIPE and "onnxruntime_perf_test" in manifest["timings_format"]
    record = manifest["pieces"][3]
    assert record["input_layout"] == "NCHW" and record["file"].endswith(".onnx")
    assert runtime("onnxruntime").int8_weights(tmp_path / "blocks" / record["file"]) > 0
    timings = tmp_path / "blocks" / "timings.json"
    timings.write_text(json.dumps({p["key"]: 0.01 * (i + 1) for i, p in enumerate(manifest["pieces"])}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["profile", "d", "--import-timings", str(timings), "--json"])
    assert result.exit_code == 0, result.output
    table = load_table(str(tmp_path / default_table_path("d", int8=True)))
    assert table.precision == "int8" and table.data["runtime"]["quantization"] == RECIPE
    assert table.data["runtime"]["backend"] == "imported" and table.data["runtime"]["format"] == "onnx"
    for precision in ("fp32", None):  # an FP32 manifest, and one written before INT8 blocks (FP32 too)
        fp32 = {key: value for key, value in manifest.items() if key != "precision"}
        fp32.update({"precision": precision} if precision else {})
        (tmp_path / "fp32.json").write_text(json.dumps(fp32))
        with pytest.raises(EdgeNASError, match=r"^--int8 with --import-timings: manifest .*fp32.json is of FP32"):
            import_timings("d", timings, tmp_path / "fp32.json", tmp_path / "x.json", int8=True)
    assert not (tmp_path / "x.json").exists()


def test_calibration_finds_a_constant_scale_and_ranks():
    networks = [{"name": str(i), "flops": i, "params": 10**6 * i % 7, "predicted_raw_ms": p, "measured_ms": 1.05 * p}
                for i, p in enumerate([1.0, 2.0, 3.5, 5.0, 8.0, 12.0])]
    calibration, validation = calibrate(networks)
    assert calibration["kind"] == "scale" and calibration["scale"] == pytest.approx(1.05)
    assert validation["median_abs_error_pct"] == pytest.approx(0, abs=1e-6)
    assert validation["before_calibration"]["median_abs_error_pct"] == pytest.approx(100 * (1 / 1.05 - 1) * -1)
    assert validation["within_10pct"] == 1.0
    assert kendall_tau([1, 2, 3], [1, 2, 3]) == 1.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    # tau-a, as tables have always written: a tie counts in the pairs, neither concordant nor discordant (tau-b,
    # scipy's, would give 2 / sqrt(2 x 3) = 0.816)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == 2 / 3 and kendall_tau([5.0], [1.0]) is None


def test_one_p90_for_tables_and_export_reports():
    """Latency tables (`summarize`) and export reports (`median_latency`) write the same p90: the sorted calls'
    element at index int(0.9 n), numpy's "higher" percentile, one of the times measured."""
    import numpy as np

    from edgenas.profiling.measure import summarize
    from exporters.timing import median_latency, p90

    times = [float(t) for t in range(250, 0, -1)]  # 250 calls of 1-250 ms, as a table's 5 passes of 50 repeats
    assert p90(times) == 226.0 == np.percentile(times, 90, method="higher")
    assert p90([5.0]) == 5.0 and p90([float(t) for t in range(10)]) == 9.0 and p90([float(t) for t in range(11)]) == 9.0
    assert summarize(times, [125.5, 130.0], 0.0)["p90_ms"] == 226.0
    # 3 passes of 10 calls lasting 1, 2, ... 30 ms by the clock: the p90 of the 30 is the 28th, 28 ms (before, export
    # reports took index int(0.9 (n - 1)): 27 ms)
    clock = iter([t for k in range(30) for t in (k, k + (k + 1) / 1000.0)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("exporters.timing.time.perf_counter", lambda: next(clock))
        latency = median_latency(lambda: None, 0, 10, 3)
    assert latency == {"median_ms": pytest.approx(5.5), "p90_ms": pytest.approx(28.0), "calls": 30}


def test_calibration_uses_an_offset_when_every_network_pays_one():
    networks = [{"name": str(i), "flops": i, "params": 10**6 * i % 7, "predicted_raw_ms": p,
                 "measured_ms": 0.9 * p + 0.5}
                for i, p in enumerate([1.0, 2.0, 3.5, 5.0, 8.0, 12.0])]
    calibration, validation = calibrate(networks)
    assert calibration["kind"] == "linear"
    assert calibration["scale"] == pytest.approx(0.9) and calibration["offset_ms"] == pytest.approx(0.5)
    assert validation["median_abs_error_pct"] == pytest.approx(0, abs=1e-6)


def test_calibration_charges_parameters_when_large_networks_pay_for_them():
    # Whole networks slower than their pieces in proportion to their weights (cache misses), as seen at 32x32.
    raw = [0.5, 0.6, 0.9, 1.0, 1.2, 1.3, 1.5, 1.6, 0.8, 1.1]
    params = [2.4e6, 5.0e6, 2.6e6, 6.1e6, 3.0e6, 7.0e6, 4.1e6, 6.6e6, 3.5e6, 2.2e6]
    networks = [{"name": str(i), "flops": i, "params": p, "predicted_raw_ms": r,
                 "measured_ms": 0.7 * r + 0.25 * p / 1e6 - 0.5}
                for i, (r, p) in enumerate(zip(raw, params, strict=True))]
    calibration, validation = calibrate(networks)
    assert calibration["kind"] == "memory"
    assert calibration["ms_per_mparam"] == pytest.approx(0.25) and calibration["scale"] == pytest.approx(0.7)
    assert validation["median_abs_error_pct"] == pytest.approx(0, abs=1e-6)


def _networks(raw, params, calls, measured):
    return [{"name": str(i), "flops": i, "params": p, "calls": c, "predicted_raw_ms": r,
             "measured_ms": measured(r, p, c)} for i, (r, p, c) in enumerate(zip(raw, params, calls, strict=True))]


RAW = [0.25, 0.42, 0.6, 0.68, 0.85, 0.87, 0.96, 1.1, 1.2, 1.25, 1.3, 1.4, 1.5, 1.56]
PARAMS = [0.8e6, 1.2e6, 1.4e6, 1.8e6, 2.4e6, 3.3e6, 3.5e6, 4.0e6, 3.6e6, 3.5e6, 5.2e6, 4.6e6, 6.6e6, 7.1e6]
CALLS = [8, 14, 19, 21, 22, 22, 23, 23, 23, 23, 23, 23, 23, 23]


def test_calibration_charges_each_call_when_small_networks_run_faster_than_their_pieces():
    # Each piece timed alone paid one session call that the whole network pays once (seen at 32x32).
    networks = _networks(RAW, PARAMS, CALLS, lambda r, p, c: 1.2 * r - 0.012 * c)
    calibration, validation = calibrate(networks)
    assert calibration["kind"] == "calls"
    assert calibration["scale"] == pytest.approx(1.2) and calibration["ms_per_call"] == pytest.approx(-0.012)
    assert validation["max_abs_error_pct"] == pytest.approx(0, abs=1e-6)
    assert validation["kinds_tried"]["linear"]["max_abs_error_pct"] > 1  # the offset alone cannot follow it


def test_a_cost_per_call_never_makes_the_cheapest_piece_cost_less_than_nothing():
    # Fitted freely, -12 us per call would make a 5 us piece cost -6 us: adding that block would speed a network
    # up, and the knapsack would take it for free. Bound, the piece costs exactly 0 and the rest is fitted again.
    networks = _networks(RAW, PARAMS, CALLS, lambda r, p, c: 1.2 * r - 0.012 * c)
    floor = {"predicted_raw_ms": 0.2, "params": 0.8e6, "calls": 8, "piece_ms": 0.005, "piece_params": 1000}
    calibration, _ = calibrate(networks, floor)
    assert calibration["kind"] in ("calls", "cache")
    assert calibration["scale"] * 0.005 + calibration["ms_per_call"] == pytest.approx(0, abs=1e-12)
    assert calibrate(networks)[0]["ms_per_call"] == pytest.approx(-0.012)  # unbound without a floor


def test_calibration_charges_parameters_beyond_the_cache():
    # Networks whose weights exceed the cache reload them at every call: slower than their pieces above a size.
    def measured(r, p, c):
        return 1.2 * r - 0.012 * c + 0.16 * max(0.0, p / 1e6 - 3.6)

    networks = _networks(RAW, PARAMS, CALLS, measured)
    calibration, validation = calibrate(networks)
    assert calibration["kind"] == "cache" and calibration["cache_mparams"] == pytest.approx(3.6)
    assert calibration["ms_per_mparam_over_cache"] == pytest.approx(0.16) and calibration["scale"] == pytest.approx(1.2)
    assert validation["within_10pct"] == 1.0 and validation["kinds_tried"]["calls"]["max_abs_error_pct"] > 5


def test_too_few_validation_networks_to_fit_the_cache_are_named_with_the_validate_that_fits_it(capsys):
    # make demo's quick profile measured 9 networks: `cache`, the fit its 16 px networks need, was never tried and
    # the table predicted 11-56% of them within 10%. The profile now says so, and how many more to measure.
    def measured(r, p, c):
        return 1.2 * r - 0.012 * c + 0.16 * max(0.0, p / 1e6 - 3.6)

    from edgenas.cli.render import print_table_summary

    few = _networks(RAW[:9], PARAMS[:9], CALLS[:9], measured)
    calibration, validation = calibrate(few)
    assert calibration["kind"] != "cache" and validation["kinds_not_tried"] == {"cache": 10}
    summary = {"path": "t.json", "entries": 1, "precision": "fp32", "space": "s", "resolution": 16, "width_mult": 1.0,
               "runtime": {"backend": "onnxruntime", "threads": 1}, "passes": 3, "calibration": calibration,
               "validation": validation, "fidelity": {"note": None}}
    print_table_summary(summary)
    out = capsys.readouterr().out
    assert "note: 9 validation networks are too few to fit the cache calibration (10 needed): raise --validate by 1" \
        in " ".join(out.split())
    assert calibrate(_networks(RAW, PARAMS, CALLS, measured))[1]["kinds_not_tried"] == {}
    print_table_summary({**summary, "validation": calibrate(_networks(RAW, PARAMS, CALLS, measured))[1]})
    assert "too few" not in capsys.readouterr().out


def test_a_search_costs_a_cache_calibrated_table_as_the_table_predicts(tiny_table):
    # The search's per-candidate costs (two additive columns, their maximum) give the table's own prediction.
    import itertools

    from edgenas.cost.cost_model import CostModel
    from edgenas.space.arch import make_arch

    path, table = tiny_table
    space = get_space("tiny")
    for classes in (10, 1000):
        archs = [make_arch(space, list(layers), classes) for layers in itertools.product(*(la.choices for la in space))]
        params = sorted(cost_table(space).params(arch) / 1e6 for arch in archs)
        calibration = {"kind": "cache", "scale": 1.2, "offset_ms": 0.0, "ms_per_mparam": 0.0, "ms_per_call": -0.004,
                       "ms_per_mparam_over_cache": 3.0, "cache_mparams": params[len(params) // 2]}  # half beyond
        cached = validate_table({**table.data, "calibration": calibration}, str(path))
        model = CostModel.build(space, classes, cost_table(space), cached)
        assert [model.of(arch)[1] for arch in archs] == pytest.approx([cached.predict(arch) for arch in archs])



# A search of tiny on 100 digits, as short as a search runs: what happens before and after the budgets are checked.
TINY_SEARCH = ["search", "--space", "tiny", "--schedule", "1.0:1", "--probe-epochs", "0", "--retrain-epochs", "0",
               *CHEAP_ARGS, "--train-per-class", "10", "--test-per-class", "5", "-q"]


def _altered_table(tiny_table, folder, name: str, calibration: dict, medians: dict | None = None):
    """The measured tiny table with another calibration and some pieces' medians replaced: (path, loaded table)."""
    path, _ = tiny_table
    data = json.loads(path.read_text())
    data["calibration"] = calibration
    for key, ms in (medians or {}).items():
        data["entries"][key]["median_ms"] = ms
    out = folder / f"{name}.json"
    out.write_text(json.dumps(data))
    return out, load_table(str(out))


def _predicted(table, space) -> dict:
    """Every architecture of the space (10 classes) and its latency predicted by the table."""
    import itertools

    from edgenas.space.arch import make_arch

    return {layers: table.predict(make_arch(space, list(layers), 10))
            for layers in itertools.product(*(layer.choices for layer in space))}


def test_a_latency_search_takes_a_table_whose_calibration_makes_blocks_cost_less_than_nothing(tiny_table, tmp_path):
    # Issue 33: a profile of mobile-small at 16 px, width 0.5, calibrated with a cost per piece below what its
    # cheapest blocks took, gave them negative costs; with the cache term and a FLOPs budget (three constraints)
    # the search's knapsack then failed: "could not broadcast input array from shape (69,101,99) into shape
    # (69,1,99)". The same shape on tiny, in the middle of its latency range.
    from edgenas.cost.cost_model import CostModel

    _, measured = tiny_table
    space = get_space("tiny")
    medians = sorted(measured.median(key) for key in space_keys(space) if key.startswith("ir:"))
    smallest = preset("smallest", space, 10)
    calibration = {"kind": "cache", "scale": 1.0, "ms_per_call": -medians[len(medians) // 2], "offset_ms": 0.2,
                   "ms_per_mparam_over_cache": 3.0, "cache_mparams": cost_table(space).params(smallest) / 1e6}
    path, table = _altered_table(tiny_table, tmp_path, "below-nothing", calibration)
    model = CostModel.build(space, 10, cost_table(space), table)
    assert (model.ms < 0).any() and model.ms_cache is not None  # the shape that broke the grid
    predicted = _predicted(table, space).values()
    budget = f"{(min(predicted) + max(predicted)) / 2:.7f}ms"
    result = CliRunner().invoke(app, [*TINY_SEARCH, "--table", str(path), "--latency", budget, "--json",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["within_latency_budget"] and summary["predicted_latency_ms"] <= summary["latency_budget_ms"]
    assert summary["predicted_latency_ms"] == pytest.approx(table.predict(load_arch(tmp_path / "run" / "arch.json")))


def test_search_refusals_and_latency_name_one_fastest_network(tiny_table, tmp_path, monkeypatch):
    # Issue 33: with a cache calibration the search refused 0.01 ms naming a lower bound (0.149 ms), refused 0.15 ms
    # with a FLOPs budget that did not bind as "cannot be met together", and `latency` put the `smallest` preset at
    # 0.180 ms. One figure now, exact (CostModel.fastest), in each message. Built to tell them apart: in tiny's two
    # layers without a skip, k5_e3 is timed 0.01 ms faster than k3_e3 but has more parameters, and the cache charges
    # what two k5_e3 hold beyond one: one k5_e3 is fastest, and neither cost column alone finds it.
    from edgenas.cost.cost_model import CostModel
    from edgenas.space.arch import make_arch
    from edgenas.units import format_flops

    space = get_space("tiny")
    flops_table = cost_table(space)
    first, _, third, _ = space  # the two layers without a skip
    medians = {block_key(layer, choice): ms for layer in (first, third)
               for choice, ms in (("k3_e3", 0.03), ("k5_e3", 0.02), ("k3_e6_se", 0.04))}
    smallest = preset("smallest", space, 10)
    beyond = flops_table.layers[first.label]["k5_e3"][1] - flops_table.layers[first.label]["k3_e3"][1]
    calibration = {"kind": "cache", "scale": 1.0, "cache_mparams": (flops_table.params(smallest) + beyond) / 1e6,
                   "ms_per_mparam_over_cache": 0.015 / (beyond / 1e6)}
    path, table = _altered_table(tiny_table, tmp_path, "fastest", calibration, medians)
    model = CostModel.build(space, 10, flops_table, table)
    predicted = _predicted(table, space)
    fastest = min(predicted.values())  # by brute force over every network
    bound = max(fixed + float(sum(t[i, : len(la.choices)].min() for i, la in enumerate(space)))
                for t, fixed in model.ms_columns())  # what the refusal named before
    assert bound < fastest - 0.002 and table.predict(smallest) > fastest + 0.002  # the test can tell them apart
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def search(*options):
        return runner.invoke(app, [*TINY_SEARCH, "--table", str(path), "--strategy", "random", *options])

    shown = f"{fastest:.3f} ms"
    refused = search("--latency", f"{fastest - 1e-6:.7f}ms", "--out", "below")
    assert refused.exit_code == 1 and f"the fastest network of space tiny (10 classes) is predicted at {shown}" in \
        " ".join(refused.output.split()) and not os.path.exists("below")
    accepted = search("--latency", f"{fastest + 1e-6:.7f}ms", "--out", "above", "--json")
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["predicted_latency_ms"] == pytest.approx(fastest)
    # With a FLOPs budget that only the smallest network meets, its latency is the least reachable.
    least, under_flops = flops_table.flops(smallest), table.predict(smallest)
    between = (fastest + under_flops) / 2
    fewest = min(flops_table.flops(make_arch(space, list(a), 10)) for a, ms in predicted.items() if ms <= between)
    refused = search("--flops", str(least), "--latency", f"{between:.7f}ms", "--out", "together")
    message = " ".join(refused.output.split())
    assert refused.exit_code == 1 and "cannot be met together" in message, refused.output
    assert f"the fastest is predicted at {under_flops:.3f} ms" in message
    assert f"the fewest FLOPs are {format_flops(fewest)}" in message
    assert search("--flops", str(least), "--latency", f"{under_flops - 1e-6:.7f}ms", "--out", "b2").exit_code == 1
    accepted = search("--flops", str(least), "--latency", f"{under_flops + 1e-6:.7f}ms", "--out", "a2")
    assert accepted.exit_code == 0, accepted.output
    # `edgenas latency` of the `smallest` preset names the same fastest network, and says this one is slower.
    made = runner.invoke(app, ["arch", "smallest", "--space", "tiny", "--num-classes", "10", "-o", "s.json"])
    assert made.exit_code == 0, made.output
    shown_json = json.loads(runner.invoke(app, ["latency", "s.json", "--table", str(path), "--json"]).stdout)
    assert shown_json["fastest_ms"] == fastest and shown_json["predicted_ms"] > fastest
    text = " ".join(runner.invoke(app, ["latency", "s.json", "--table", str(path)]).output.split())
    assert f"fastest {shown}" in text and "slower" in text
    # The API the messages come from: the same figures.
    assert model.fastest()[1] == pytest.approx(fastest) and model.fastest(least)[1] == pytest.approx(under_flops)
    assert model.fewest_flops(between)[1] == fewest


def test_torch_backend_profiles_on_the_cpu(tmp_path):
    _, table = profile("tiny-torch", get_space("tiny"), backend="torch", validate=3, out=tmp_path / "t.json", **FAST)
    assert table.data["runtime"]["backend"] == "torch-eager" and table.data["runtime"]["device"] == "cpu"
    assert set(table.data["entries"]) == set(space_keys(get_space("tiny")))


@pytest.mark.parametrize(("args", "message"), [
    (["profile", "d", "--space", "tiny", "--threads", "0"], "bad --threads 0"),
    (["profile", "bad/name", "--space", "tiny"], "bad device name 'bad/name'"),
    (["profile", "d", "--space", "tiny", "--backend", "tvm"], "unknown backend 'tvm'"),
    (["profile", "d", "--space", "tiny", "--provider", "tpu"], "execution provider 'tpu' is not available"),
    (["profile", "d", "--space", "tiny", "--out", "/dev/null/t.json"], "cannot create folder /dev/null"),
    (["profile", "d", "--space", "tiny", "--int8", "--backend", "torch"], "--int8 with --backend torch"),
    (["profile", "d", "--space", "tiny", "--passes", "4", "--max-passes", "2"],
     "bad --max-passes 2: expected at least --passes (4)"),
    (["latency", "nothing.json", "--table", "x"], "nothing.json does not exist"),
])
def test_profile_bad_input(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_latency_and_tables_commands(tiny_table, tmp_path, monkeypatch):
    path, _ = tiny_table
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latency_tables").mkdir()
    (tmp_path / "latency_tables" / "tiny-t1.json").write_text(path.read_text())
    runner = CliRunner()
    result = runner.invoke(app, ["arch", "largest", "--space", "tiny", "--num-classes", "10", "-o", "a.json"])
    assert result.exit_code == 0
    result = runner.invoke(app, ["latency", "a.json", "--table", "tiny-t1", "--measure", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # a miss note on a busy machine goes to stderr
    assert data["predicted_ms"] > 0 and data["measured_ms"] > 0 and "error_pct" in data
    result = runner.invoke(app, ["latency", "a.json", "--table", "tiny-t1"])
    assert "ms" in result.output and "calibrated" in result.output
    assert f"{data['predicted_ms']:.3f} ms" in result.output  # the table and the JSON carry the same number
    listed = json.loads(runner.invoke(app, ["tables", "--json"]).output)
    mine = next(t for t in listed if t["device"] == "tiny-t1")
    monkeypatch.setenv("COLUMNS", "250")  # room for every column: rich shortens cells to fit the width
    shown = runner.invoke(app, ["tables"]).output
    assert f"{mine['validation']['median_abs_error_pct']:.1f}%" in shown and "tiny-t1" in shown
    result = runner.invoke(app, ["latency", "a.json", "--table", "no-such-device"])
    assert result.exit_code == 1 and "no latency table named 'no-such-device'" in result.output


def test_an_interrupted_profile_leaves_no_table_only_its_journal(tmp_path):
    out = tmp_path / "interrupted.json"
    command = [sys.executable, "-m", "edgenas", "profile", "x", "--space", "tiny", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    # Deadlines bound a hang only; on a loaded 2-core machine (CI, make demo beside it) a first timing and the
    # clean exit after Ctrl-C each took more than a minute.
    journal, deadline = tmp_path / "interrupted.json.partial", time.monotonic() + 300
    while not (journal.is_file() and journal.read_text().count("\n") >= 2):  # a header, then a first timing
        assert process.poll() is None and time.monotonic() < deadline, "the profile ended or never began measuring"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["interrupted.json.partial"]  # what a rerun continues from
    assert "timings kept in" in stderr


def test_a_calibration_that_would_predict_negative_latency_is_not_used():
    # Mid-sized networks fit best with a large negative offset, which would make the cheapest network negative.
    networks = [{"name": str(i), "flops": i, "params": 0, "predicted_raw_ms": p, "measured_ms": 2.0 * p - 1.0}
                for i, p in enumerate([1.0, 1.5, 2.0, 2.5, 3.0, 3.5])]
    calibration, _ = calibrate(networks, floor={"predicted_raw_ms": 0.2, "params": 0})
    assert calibration["kind"] in ("none", "scale")
    assert calibrate(networks)[0]["kind"] == "linear"  # without the floor the offset fit wins


def test_python_api_profiles_then_searches_under_a_latency_budget(tmp_path):
    # edgenas.profile and edgenas.search, as the README shows them: a binding latency budget is met by the table.
    import edgenas

    fast = {k: v for k, v in FAST.items() if k != "progress"}
    measured = edgenas.profile("tiny-api", "tiny", out=tmp_path / "tiny-api.json", validate=3, **fast)
    assert measured.path.is_file() and measured.summary["entries"] == len(space_keys(get_space("tiny")))
    assert measured.summary["validation"]["count"] >= 3 and measured.median_error_pct is not None
    space = get_space("tiny")
    low, high = (measured.table.predict(preset(p, space, 10)) for p in ("smallest", "largest"))
    budget = (low + high) / 2
    result = edgenas.search(space="tiny", schedule="0.5:1,1.0:1", retrain_epochs=1, batch_size=128, flops="1M",
                            latency=f"{budget:.4f}ms", table=str(measured.path), out=tmp_path / "run",
                            train_per_class=40, test_per_class=10, **CHEAP)
    assert result.summary["latency_budget_ms"] == pytest.approx(budget, abs=1e-4)  # the budget as given: 4 decimals
    given = result.summary["latency_budget_ms"]
    assert result.predicted_latency_ms <= given and result.summary["within_latency_budget"]
    assert result.predicted_latency_ms == pytest.approx(measured.table.predict(result.arch))
    with pytest.raises(EdgeNASError, match="unknown search setting"):
        edgenas.search(space="tiny", learning_rate=0.1)


# ---------------------------------------------------------------- INT8 tables and the host note


def test_an_int8_table_is_written_and_read_back(tiny_int8_table):
    path, table = tiny_int8_table
    assert path.name == "tiny-i8-int8.json" and default_table_path("tiny-i8", int8=True).name == path.name
    assert default_table_path("tiny-i8").name == "tiny-i8.json"  # FP32 and INT8 tables of a device side by side
    loaded = load_table(str(path))
    assert loaded.precision == "int8" and loaded.data == json.loads(path.read_text())
    assert set(loaded.data["entries"]) == set(space_keys(get_space("tiny")))
    assert all(entry["median_ms"] > 0 for entry in loaded.data["entries"].values())
    from exporters.runtimes.onnxruntime import RECIPE

    assert loaded.data["runtime"]["quantization"] == RECIPE and loaded.summary()["precision"] == "int8"
    # Calibrated against the INT8 validation networks, measured end to end, as an FP32 table is against FP32 ones.
    validation, calibration = loaded.data["validation"], loaded.data["calibration"]
    assert validation["count"] == 5 and all(n["measured_ms"] > 0 for n in validation["networks"])
    assert validation["median_abs_error_pct"] is not None and calibration["kind"] in CALIBRATIONS
    # Refitted as the profile fits: no piece costs less than nothing, the cheapest bounding the per-call term.
    piece_ms = min(loaded.median(block_key(la, c)) for la in get_space("tiny") for c in la.costly_choices)
    refit = fit(calibration["kind"], validation["networks"], piece_ms)
    assert all(refit[k] == pytest.approx(calibration[k]) for k in ("scale", "offset_ms", "ms_per_mparam"))
    arch = random_arch(get_space("tiny"), 10, 3)
    assert loaded.predict(arch) == pytest.approx(table.predict(arch)) and loaded.predict(arch) > 0


def test_int8_pieces_are_quantised_with_per_channel_weights(tiny):
    import onnx

    piece = next(p for p in space_pieces(tiny) if p.key.startswith("ir:"))
    backend = OrtBackend(1, int8=True)
    backend.prepare(piece)
    graph = onnx.load_from_string(backend._models[piece.key]).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}  # QDQ format
    scales = {i.name: i for i in graph.initializer}
    weight_scales = [scales[node.input[1]] for node in graph.node if node.op_type == "DequantizeLinear"
                     and node.input[0] in scales and len(scales[node.input[0]].dims) == 4]
    assert weight_scales and all(len(scale.dims) == 1 and scale.dims[0] > 1 for scale in weight_scales)
    assert backend.time(piece, 1, 3) and all(t > 0 for t in backend.time(piece, 1, 3))


def test_a_search_with_an_int8_table_keeps_to_an_int8_budget(tiny_int8_table, tmp_path, monkeypatch):
    from edgenas.report.html import _summary_rows
    from edgenas.runs.record import load_run
    from edgenas.space.arch import from_dict

    path, table = tiny_int8_table
    space = get_space("tiny")
    low, high = (table.predict(preset(p, space, 10)) for p in ("smallest", "largest"))
    budget = float(f"{(low + high) / 2:.4f}")
    monkeypatch.setenv("COLUMNS", "300")  # the summary's cells whole
    result = CliRunner().invoke(app, ["search", "--space", "tiny", "--schedule", "0.5:1,1.0:1", "--retrain-epochs",
                                      "1", "--batch-size", "128", "--flops", "1M", "--latency", f"{budget}ms",
                                      "--table", str(path), "--out", str(tmp_path / "run"), "--verbose", *CHEAP_ARGS,
                                      "--train-per-class", "40", "--test-per-class", "10"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["latency_precision"] == "int8" and summary["within_latency_budget"]
    # The derived network's INT8 prediction is what was budgeted.
    assert summary["predicted_latency_ms"] == pytest.approx(table.predict(from_dict(summary["arch"])))
    assert summary["predicted_latency_ms"] <= summary["latency_budget_ms"] == pytest.approx(budget)
    said = " ".join(result.output.split())
    assert f"latency budget {budget:g} ms (INT8 table tiny-i8-int8)" in said  # the plan
    assert f"latency budget │ {budget:g} ms (INT8 table tiny-i8-int8) │ met" in said  # the summary
    rows = {what: (value, how) for what, value, how in _summary_rows(load_run(tmp_path / "run"))}
    assert rows["latency budget"] == (f"{budget:g} ms (INT8 table tiny-i8-int8)",  # the report
                                      summary["latency_budget_verdict"])
    assert summary["latency_budget_verdict"].startswith("met")  # "met only as predicted" within the table's p95
    assert rows["predicted latency"][1].startswith("INT8 table tiny-i8-int8")


def _measured_here(tmp_path, monkeypatch, table, *options):
    """`edgenas latency a.json --table TABLE --measure [OPTIONS]` on `tiny`'s largest network, run in `tmp_path`."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    if not (tmp_path / "a.json").exists():
        made = runner.invoke(app, ["arch", "largest", "--space", "tiny", "--num-classes", "10", "-o", "a.json"])
        assert made.exit_code == 0, made.output
    measured = runner.invoke(app, ["latency", "a.json", "--table", str(table), "--measure", *options])
    assert measured.exit_code == 0, measured.output
    return measured


def test_the_host_note_names_another_cpu_and_stays_silent_here(tiny_int8_table, tmp_path, monkeypatch):
    path, table = tiny_int8_table
    assert host_note(table) is None  # made on this machine
    data = json.loads(path.read_text())
    data["host"] = {**data["host"], "cpu": "Some Other CPU 9000", "cores": 64, "cpu_id": "family 6 model 85 stepping 7"}
    other = tmp_path / "elsewhere-int8.json"
    other.write_text(json.dumps(data))
    here = host_info()
    note = host_note(load_table(str(other)))
    this = f"{here['cpu']} ({here['cpu_id']})" if "cpu_id" in here else here["cpu"]
    assert note == (f"note: table elsewhere-int8 was measured on Some Other CPU 9000 (family 6 model 85 stepping 7), "
                    f"64 cores; this machine is {this}, {here['cores']} cores: its predictions may not hold here; "
                    "profile this machine with edgenas profile NAME --space tiny --resolution 16 --int8")
    assert host_note(table, {**here, "cores": here["cores"] + 1}) is not None  # the core count alone differs
    # One model name, another generation (two "AMD EPYC" of this project differ 2.4x in speed): named too.
    if "cpu_id" in here:  # Linux records it
        assert host_note(table, {**here, "cpu_id": "family 23 model 49 stepping 0"}) is not None
    assert host_note(table, {k: v for k, v in here.items() if k != "cpu_id"}) is None  # not recorded: not compared
    measured = _measured_here(tmp_path, monkeypatch, other)
    assert "INT8 table elsewhere-int8" in measured.output and "whole INT8 network" in measured.output
    assert " ".join(note.split()) in " ".join(measured.output.split())
    assert measured.output.count("note:") == 1
    mine = _measured_here(tmp_path, monkeypatch, path, "--json")
    assert "was measured on" not in mine.output, mine.output
    assert json.loads(mine.stdout)["host_note"] is None and json.loads(mine.stdout)["precision"] == "int8"


def test_a_measurement_that_misses_more_than_the_validation_did_says_to_measure_again(tiny_int8_table, tmp_path,
                                                                                       monkeypatch):
    path, table = tiny_int8_table
    v = table.data["validation"]
    bound = max(10.0, v["max_abs_error_pct"])
    assert miss_note(table, 0.0) is None and miss_note(table, bound) is None and miss_note(table, -bound) is None
    note = miss_note(table, -(bound + 5))
    assert note == (f"note: the prediction misses this measurement by {-(bound + 5):+.1f}%, more than it missed any "
                    f"of the table's {v['count']} validation networks ({v['max_abs_error_pct']:.1f}% at most): a busy "
                    "minute on this machine can move whole-network timings that much; measure again, and if it stays, "
                    "profile this machine again (--fresh)")
    assert miss_note(table, bound + 5, {**host_info(), "cores": host_info()["cores"] + 1}) is None  # the host note's
    unvalidated = json.loads(path.read_text())
    unvalidated["validation"] = {"count": 0, "networks": []}
    assert miss_note(validate_table(unvalidated, "t"), 500.0) is None  # no validation to compare with
    # A table whose calibration predicts three times what the network takes here, measured for real.
    data = json.loads(path.read_text())
    for term in ("scale", "offset_ms", "ms_per_mparam", "ms_per_call", "ms_per_mparam_over_cache"):
        if term in data["calibration"]:
            data["calibration"][term] *= 3
    tripled = tmp_path / "tripled-int8.json"
    tripled.write_text(json.dumps(data))
    measured = _measured_here(tmp_path, monkeypatch, tripled)
    said = " ".join(measured.output.split())
    assert said.count("note:") == 1 and "note: the prediction misses this measurement by +" in said, said
    assert "measure again, and if it stays, profile this machine again (--fresh)" in said
    as_json = _measured_here(tmp_path, monkeypatch, tripled, "--json")
    assert json.loads(as_json.stdout)["miss_note"].startswith("note: the prediction misses this measurement by +")


def test_a_profile_whose_validation_is_poor_says_how_to_measure_again(capsys):
    from edgenas.cli.render import print_table_summary

    table = load_table("epyc-zen5-2core-ort-t1-mobilesmall32-int8")
    summary = table.summary("t.json")
    print_table_summary(summary)
    assert summary["validation"]["within_10pct"] >= 0.9 and "--fresh" not in capsys.readouterr().out
    # A profile that landed in a busy minute (this table's first run on 2026-12-03: 39% within 10%).
    summary["validation"] = {**summary["validation"], "within_10pct": 0.39}
    print_table_summary(summary)
    out = capsys.readouterr().out
    assert "note: only 39% of the validation networks" in out and "--fresh --max-passes 15" in out


@pytest.mark.parametrize(("goal", "passes_done", "missed"), [
    ({"within_10pct": 1.01, "median_abs_error_pct": 1000.0}, 5, "within +/-10% (goal 101%)"),
    ({"within_10pct": 0.0, "median_abs_error_pct": -1.0}, 5, "(goal -1%)"),
    ({"within_10pct": 0.0, "median_abs_error_pct": 1000.0}, 2, None)])
def test_a_profile_adds_passes_while_its_validation_misses_the_goal(tmp_path, monkeypatch, goal, passes_done, missed):
    """With --max-passes, a profile whose validation networks miss the goal (the share within 10%, or the median
    error) is timed in more passes (--passes at a time, at most --max-passes in all), says which part it missed, and
    keeps each piece's best pass median of all of them; one that meets the goal stops at --passes. (Each part of the
    goal is moved out of reach, or to nothing, to make the cases certain.)"""
    from edgenas.cost import notes

    monkeypatch.setattr(notes, "FIDELITY_GOAL", goal)
    said = []
    _, table = profile("tiny-more", get_space("tiny"), validate=3, out=tmp_path / "t.json", max_passes=5,
                       log=said.append, **FAST)
    data = table.data
    assert data["passes"] == passes_done
    for entry in data["entries"].values():
        assert len(entry["pass_medians_ms"]) == passes_done and entry["n"] == FAST["repeats"] * passes_done
        assert entry["median_ms"] == min(entry["pass_medians_ms"])
    if passes_done == 5:  # 2, then 2 more, then the last 1
        assert len(said) == 2 and "after 2 passes" in said[0] and "timing 1 more passes" in said[1]
        assert all(missed in line for line in said), said
    else:
        assert said == []
    assert not (tmp_path / "t.json.partial").exists()


def test_a_profile_interrupted_in_its_extra_passes_resumes_them_from_its_journal(tmp_path, monkeypatch):
    """Ctrl-C while --max-passes is timing more passes keeps every pass timed so far: the same command again times
    only the passes left, and the table equals one measured in a single go as to which passes it holds."""
    from edgenas.cost import notes
    from edgenas.profiling.validation import validation_archs

    # out of reach: 2 passes, 2 more, then the last 1
    monkeypatch.setattr(notes, "FIDELITY_GOAL", {"within_10pct": 1.01, "median_abs_error_pct": 0.0})
    space, out = get_space("tiny"), tmp_path / "t.json"

    def interrupt_before_the_last_pass(line: str) -> None:
        if "timing 1 more passes" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        profile("tiny-more", space, validate=3, out=out, max_passes=5, log=interrupt_before_the_last_pass, **FAST)
    assert not out.exists()
    timed = len(space_pieces(space)) + len(validation_archs(space, 3, seed=0))
    said = []
    _, table = profile("tiny-more", space, validate=3, out=out, max_passes=5, log=said.append, **FAST)
    assert table.data["resumed_timings"] == 4 * timed  # passes 1-4 came from the journal, pass 5 was timed
    assert table.data["passes"] == 5 and any("resuming the profile" in line for line in said)
    for entry in table.data["entries"].values():
        assert len(entry["pass_medians_ms"]) == 5 and entry["median_ms"] == min(entry["pass_medians_ms"])
    assert not out.with_name("t.json.partial").exists()
