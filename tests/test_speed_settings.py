"""Speed settings of training (precision, memory format, compilation): what `auto` resolves to, that each setting
really trains, and that a run records what it used."""

import json

import pytest
import torch
from conftest import CHEAP, SMALL_DATA

from edgenas.cost.presets import preset
from edgenas.errors import EdgeNASError
from edgenas.runs.settings import SearchSettings
from edgenas.searching.evaluate import evaluate_run
from edgenas.searching.run import search
from edgenas.space.network import build_model
from edgenas.space.spec import get_space
from edgenas.training.device import Device

QUICK = {"space": "tiny", "schedule": "1.0:1", "probe_epochs": 0, "retrain_epochs": 1, "batch_size": 128,
         "device": "cpu", **CHEAP, **SMALL_DATA}


def test_auto_on_the_cpu_is_float32_channels_last():
    device = Device.pick("cpu")
    assert device.amp_dtype is None and device.channels_last and not device.compile
    assert Device.pick("cpu", memory_format="contiguous").channels_last is False
    assert Device.pick("cpu", precision="bf16").amp_dtype == torch.bfloat16


def test_prepared_tensors_follow_the_memory_format():
    for memory_format, expected in (("channels-last", torch.channels_last), ("contiguous", torch.contiguous_format)):
        device = Device.pick("cpu", memory_format=memory_format)
        weight = device.prepare(build_model(preset("smallest", get_space("tiny"), 10))).stem.conv.conv.weight
        assert weight.is_contiguous(memory_format=expected)
        assert device.input(torch.zeros(2, 3, 16, 16)).is_contiguous(memory_format=expected)


@pytest.mark.parametrize("bad", [{"precision": "fp8"}, {"memory_format": "nhwc"}])
def test_bad_values_name_the_value(bad):
    with pytest.raises(EdgeNASError, match="expected one of"):
        SearchSettings(**bad).validate()


@pytest.mark.parametrize("speed", [{"memory_format": "contiguous"}, {"precision": "bf16"},
                                   pytest.param({"compile": True}, marks=pytest.mark.slow)])  # 30-70 s cold
def test_a_search_trains_under_each_setting_and_records_it(tmp_path, speed):
    result = search(SearchSettings(**QUICK, **speed, flops=250_000), out=tmp_path / "run", progress=False,
                    log=lambda *a: None)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {k: config["settings"][k] for k in speed} == speed
    resolved = config["resolved"]
    assert resolved["memory_format"] == speed.get("memory_format", "channels-last")
    assert resolved["amp"] == ("torch.bfloat16" if speed.get("precision") == "bf16" else "None")
    assert resolved["compile"] is speed.get("compile", False)
    assert 0.0 <= result.test_acc <= 1.0 and result.summary["within_flops_budget"]
    # The retrained weights are the plain network's (a compiled module's would carry `_orig_mod.` keys): they load
    # into the network the architecture builds, and give the accuracy the search reported.
    assert evaluate_run(tmp_path / "run")["test_acc"] == pytest.approx(result.test_acc, abs=1e-6)
