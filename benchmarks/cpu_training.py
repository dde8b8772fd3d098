"""Benchmark: what a training step costs on the CPU under each speed setting, side by side in one process.

For every network kind (standalone MobileNetV2 preset, largest and a random network; supernet weight step and
architecture step) in `mobile-small` at 16x16 and 32x32 (and `macro` at 32x32 where that space exists), batch 64,
this times one factor at a time against the baseline (NCHW, eager, float32, all cores), interleaved round by round
so that the shared machine's noise hits every variant alike, and reports medians and ratios:
- memory format: NCHW against channels-last;
- precision: float32 against bfloat16 autocast (where the CPU has BF16 instructions);
- threads: intra-op threads 1 against all cores;
- compilation (`--compile`, slow): eager against `torch.compile`, with the compile time and the break-even number
  of epochs at a given epoch length (`--epoch-steps`).
`--accuracy` also retrains the digits' network for 30 epochs in float32 and in bfloat16 and reports both test
accuracies (the precision's effect on what a user gets).

Run by hand:  .venv/bin/python benchmarks/cpu_training.py [--rounds 10] [--compile] [--accuracy] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from edgenas.cost.presets import preset
from edgenas.space.network import build_model
from edgenas.space.spec import SPACES, get_space
from edgenas.space.supernet import Supernet

KINDS = ("mobilenetv2", "largest", "random", "supernet-weight", "supernet-arch")


@dataclass(frozen=True)
class Variant:
    name: str
    channels_last: bool = False
    bf16: bool = False
    threads: int | None = None  # None: all cores (torch's default)
    compile: bool = False


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return sorted(f for f in line.split(":", 1)[-1].split() if f.startswith(("avx", "amx", "fma")))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def make_step(kind: str, space_name: str, resolution: int, batch: int, variant: Variant):
    """A closure that runs one training step of `kind` under `variant`; paths of a supernet come from a generator
    reseeded by `reseed()`, so every variant runs the same paths in the same round."""
    torch.manual_seed(0)
    space = get_space(space_name, resolution)
    memory = torch.channels_last if variant.channels_last else torch.contiguous_format
    x = torch.randn(batch, 3, resolution, resolution).contiguous(memory_format=memory)
    y = torch.randint(0, 10, (batch,))
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant.bf16 else contextlib.nullcontext
    generator = torch.Generator()
    if kind.startswith("supernet"):
        net = Supernet(space, 10).train().to(memory_format=memory)
        paths = 1 if kind == "supernet-weight" else 2
        params = net.weight_parameters() if paths == 1 else [net.alpha]
        optimizer = (torch.optim.SGD(params, lr=0.01, momentum=0.9) if paths == 1
                     else torch.optim.Adam(params, lr=0.01))

        def forward():
            return net(x, net.sample(generator, paths))
    else:
        arch = preset(kind, space, 10, seed=1 if kind == "random" else None)
        model = build_model(arch).train().to(memory_format=memory)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        forward = torch.compile(model) if variant.compile else model

        def _forward():
            return forward(x)
        forward_fn = _forward
        return _step(forward_fn, optimizer, y, autocast, generator)
    return _step(forward, optimizer, y, autocast, generator)


def _step(forward, optimizer, y, autocast, generator):
    def step():
        with autocast():
            logits = forward().float()
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def reseed(seed: int) -> None:
        generator.manual_seed(seed)
    return step, reseed


def time_variants(kind: str, space: str, resolution: int, variants: list[Variant], args) -> dict:
    all_threads = torch.get_num_threads()
    steps, compile_s = {}, {}
    for v in variants:
        torch.set_num_threads(v.threads or all_threads)
        steps[v.name] = make_step(kind, space, resolution, args.batch, v)
        start = time.perf_counter()
        steps[v.name][1](0)
        steps[v.name][0]()  # warm-up (and, compiled, the compilation)
        compile_s[v.name] = time.perf_counter() - start
        steps[v.name][0]()
    times = {v.name: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            torch.set_num_threads(v.threads or all_threads)
            step, reseed = steps[v.name]
            reseed(r)
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[v.name].append((time.perf_counter() - start) / args.steps)
    torch.set_num_threads(all_threads)
    median = {name: statistics.median(t) for name, t in times.items()}
    base = variants[0].name
    row = {"kind": kind, "space": space, "resolution": resolution, "median_step_s": median,
           "ratio_to_" + base: {name: median[name] / median[base] for name in median}}
    compiled = [v for v in variants if v.compile]
    if compiled:
        v = compiled[0]
        saved = median[base] - median[v.name]
        row["compile_s"] = compile_s[v.name] - compile_s[base]
        row["break_even_epochs"] = (row["compile_s"] / (saved * args.epoch_steps)) if saved > 0 else None
    return row


def retrain_accuracy(bf16: bool, channels_last: bool) -> dict:
    """30 epochs of the digits' retraining recipe on MobileNetV2 (mobile-small, 16x16), test accuracy."""
    from edgenas.data.dataset import load_dataset
    from edgenas.training.device import Device
    from edgenas.training.train import TrainSettings, evaluate, make_optimizer, train_epoch

    device = Device.pick("cpu", precision="bf16" if bf16 else "fp32",
                         memory_format="channels-last" if channels_last else "contiguous")
    data = load_dataset(None, 16, flip=False)
    torch.manual_seed(1)
    model = device.prepare(build_model(preset("mobilenetv2", get_space("mobile-small", 16), data.num_classes)))
    settings = TrainSettings(30, 64, 0.02, 0.9, 4e-5, 0.1)
    optimizer, scheduler = make_optimizer(model, settings, 30 * (data.size("train") // 64))
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(settings.epochs):
        train_epoch(model, data, optimizer, scheduler, settings, generator, device, device.scaler())
    return {"bf16": bf16, "channels_last": channels_last, "test_acc": evaluate(model, data, "test", device),
            "test_images": data.size("test"), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2, help="steps timed together in one round")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--compile", action="store_true", help="also eager vs torch.compile (standalone kinds)")
    parser.add_argument("--epoch-steps", type=int, default=22, help="steps per epoch for the break-even figure "
                        "(22: the digits at batch 64)")
    parser.add_argument("--accuracy", action="store_true", help="also 30-epoch digits retraining, fp32 vs bf16")
    parser.add_argument("--configs", nargs="+", default=None, metavar="SPACE:RESOLUTION",
                        help="only these (default: mobile-small:16 mobile-small:32 macro:32)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    flags = cpu_flags()
    has_bf16 = any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    configs = [("mobile-small", 16), ("mobile-small", 32)] + ([("macro", 32)] if "macro" in SPACES.names() else [])
    if args.configs:
        configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs]
    rows = []
    for space, resolution in configs:
        for kind in args.kinds:
            if kind == "mobilenetv2" and SPACES.get(space).mobilenetv2_depths is None:
                continue  # the space cannot express it (macro)
            variants = [Variant("nchw"), Variant("channels-last", channels_last=True), Variant("threads-1", threads=1)]
            if has_bf16:
                variants += [Variant("bf16", bf16=True), Variant("channels-last+bf16", channels_last=True, bf16=True)]
            if args.compile and not kind.startswith("supernet"):
                variants += [Variant("compile", compile=True),
                             Variant("channels-last+compile", channels_last=True, compile=True)]
            row = time_variants(kind, space, resolution, variants, args)
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("kind", "space", "resolution")}
                             | {"ratio": {k: round(v, 3) for k, v in row["ratio_to_nchw"].items()}}), flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "cpu_flags": flags,
              "cores": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
              "batch": args.batch, "rounds": args.rounds, "steps_per_round": args.steps, "rows": rows}
    if args.accuracy:
        result["accuracy"] = [retrain_accuracy(bf16, True) for bf16 in ((False, True) if has_bf16 else (False,))]
        print(json.dumps(result["accuracy"]), flush=True)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
