"""The GPU paths of training, each run on the CPU and, marked `cuda` (skipped with a reason where no GPU is visible;
benchmarks/gpu_check.sh runs them where one is lent), on a CUDA GPU: bfloat16 autocast with channels-last
supernet and standalone epochs, sliced kernels in channels-last, data resident on the device with no host
synchronisation per weight step, float16 with loss scaling, the torch profiling backend (CUDA events on a GPU),
and a DistributedDataParallel replica on the device's process-group backend (NCCL on a GPU, Gloo on the CPU)."""

import contextlib
import copy
import warnings
from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from edgenas.cost.cost_model import CostModel
from edgenas.cost.flops import cost_table
from edgenas.cost.presets import random_arch
from edgenas.data.batches import batches
from edgenas.data.dataset import load_dataset
from edgenas.errors import EdgeNASError
from edgenas.profiling.measure import TorchBackend
from edgenas.space.network import build_model
from edgenas.space.pieces import space_pieces
from edgenas.space.spec import get_space
from edgenas.space.supernet import Supernet
from edgenas.training.distributed import Ranks, wrap
from edgenas.training.train import (
    Device,
    SupernetSettings,
    TrainSettings,
    evaluate,
    make_optimizer,
    supernet_epoch,
    train_epoch,
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    """The digits cut to 384 training, 64 search-validation and 64 test images: seconds per epoch on one core."""
    data = load_dataset(None, 16)
    keep = {"train": 384, "val": 64, "test": 64}
    return replace(data, x={k: v[:keep[k]] for k, v in data.x.items()}, y={k: v[:keep[k]] for k, v in data.y.items()})


@pytest.fixture(scope="module")
def cost(tiny):
    return CostModel.build(tiny, 10, cost_table(tiny))


class _HostReads(TorchDispatchMode):
    """Reads of tensor values by the host (`item()`, `float()`, `int()`, `bool()`, `nonzero`): on a GPU each one
    waits for the device. A CPU tensor's `tolist()` and `.cpu()` do not pass through here, nor does a copy."""

    READS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default)

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func in self.READS
        return func(*args, **(kwargs or {}))


class _Syncs:
    count = 0


@contextlib.contextmanager
def host_waits(device: str):
    """Counts the host's waits for the device in the block: on CUDA, the synchronisations torch reports in its sync
    debug mode (blocking copies included); on the CPU, where nothing waits, the reads that would (`_HostReads`)."""
    if device == "cpu":
        with _HostReads() as reads:
            yield reads
        return
    syncs = _Syncs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield syncs
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs.count = sum("synchronizing CUDA operation" in str(w.message) for w in caught)


def _optimizers(net: Supernet):
    return (torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9, nesterov=True),
            torch.optim.Adam([net.alpha], lr=0.03, betas=(0.0, 0.999)))


def _weights(module) -> list[torch.Tensor]:
    return [p.detach().clone() for name, p in module.named_parameters() if name != "alpha"]


@pytest.mark.parametrize("device", DEVICES)
def test_supernet_and_standalone_epochs_train_in_bfloat16_and_channels_last_on_device_data(device, digits, tiny,
                                                                                           cost):
    dev = Device.pick(device, precision="bf16", memory_format="channels-last")
    assert dev.amp_dtype == torch.bfloat16 and dev.channels_last and not dev.scaler().is_enabled()
    data = digits.to(dev.device)
    for x, y in batches(data, "train", 64, classes=[0, 1], generator=torch.Generator().manual_seed(0), train=True):
        assert x.device.type == y.device.type == device and x.dtype == torch.float32
    torch.manual_seed(0)
    net = dev.prepare(Supernet(tiny, data.num_classes))
    assert net.stem.conv.conv.weight.is_contiguous(memory_format=torch.channels_last)
    before, alpha = _weights(net), net.alpha.detach().clone()
    weight_opt, arch_opt = _optimizers(net)
    budget = 0.5 * float(cost.fixed_flops + cost.flops.max(1).values.sum())  # half the largest: the penalty acts
    settings = SupernetSettings(32, 0.1, 2, 2.0, budget, None)
    metrics = supernet_epoch(net, data, [0, 1, 2, 3], weight_opt, arch_opt, None, cost, settings,
                             torch.Generator().manual_seed(0), dev, dev.scaler())
    assert metrics["steps"] >= 4 and metrics["arch_steps"] == (metrics["steps"] + 1) // 2
    assert 0 < metrics["train_loss"] < 10 and 0 <= metrics["train_acc"] <= 1
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, _weights(net), strict=True))
    assert not torch.equal(alpha, net.alpha.detach())

    torch.manual_seed(0)
    model = dev.prepare(build_model(net.most_likely()))
    settings = TrainSettings(1, 64, 0.05, 0.9, 4e-5, 0.1)
    optimizer, scheduler = make_optimizer(model, settings, data.size("train") // 64)
    first = train_epoch(model, data, optimizer, scheduler, settings, torch.Generator().manual_seed(1), dev,
                        dev.scaler())
    assert 0 < first["train_loss"] < 10 and first["images"] == data.size("train") // 64 * 64
    assert 0 <= evaluate(model, data, "test", dev) <= 1


@pytest.mark.parametrize("device", DEVICES)
def test_a_supernet_path_equals_its_extracted_network_in_channels_last(device):
    space = get_space("mobile-small", 16, 0.5)
    dev = Device.pick(device, memory_format="channels-last")
    torch.manual_seed(3)
    net = Supernet(space, 10)
    with torch.no_grad():  # trained-looking batch norm: statistics away from 0 and 1
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    arch = random_arch(space, 10, 3)
    model = dev.prepare(net.extract(arch)).eval()
    net = dev.prepare(net).eval()
    x = dev.input(torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3)).to(dev.device))
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # float32 convolutions on both sides, not TF32's 10-bit mantissa
    try:
        with torch.no_grad():
            torch.testing.assert_close(net(x, net.path_of(arch)), model(x), atol=1e-4, rtol=1e-3)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


@pytest.mark.parametrize("device", DEVICES)
def test_weight_steps_on_device_data_make_no_host_synchronisation_per_step(device, digits, tiny, cost):
    # Two epochs of different lengths wait for the device equally often: the per-epoch reads (admitted classes,
    # the shuffle, the metrics read once at the end) and none per step.
    dev = Device.pick(device)
    data = digits.to(dev.device)
    torch.manual_seed(0)
    net = dev.prepare(Supernet(tiny, data.num_classes))
    weight_opt, arch_opt = _optimizers(net)
    settings = SupernetSettings(32, 0.1, 4, 2.0, None, None)
    generator = torch.Generator().manual_seed(0)

    def epoch(classes):
        return supernet_epoch(net, data, classes, weight_opt, arch_opt, None, cost, settings, generator, dev,
                              dev.scaler(), train_arch=False)

    epoch([0, 1])  # warm-up: the first draw reads the sampling weights once, then keeps them
    counted = []
    for classes in ([0, 1], list(range(10))):
        with host_waits(device) as waits:
            steps = epoch(classes)["steps"]
        counted.append((steps, waits.count))
    (short, short_waits), (long, long_waits) = counted
    assert long >= short + 6
    assert long_waits == short_waits <= 12, counted


@pytest.mark.parametrize("device", DEVICES)
def test_float16_trains_with_loss_scaling_where_it_exists(device, digits, tiny, cost):
    if device == "cpu":  # no float16 training on the CPU: refused in one line, and no loss scaling runs there
        with pytest.raises(EdgeNASError, match="precision fp16 needs a CUDA GPU"):
            Device.pick("cpu", precision="fp16")
        assert not any(Device.pick("cpu", precision=p).scaler().is_enabled() for p in ("fp32", "bf16"))
        return
    dev = Device.pick(device, precision="fp16")
    assert dev.amp_dtype == torch.float16 and dev.scaler().is_enabled()
    data = digits.to(dev.device)
    torch.manual_seed(0)
    net = dev.prepare(Supernet(tiny, data.num_classes))
    before = _weights(net)
    weight_opt, arch_opt = _optimizers(net)
    scaler = dev.scaler()
    settings = SupernetSettings(32, 0.1, 2, 2.0, None, None)
    metrics = supernet_epoch(net, data, [0, 1, 2, 3], weight_opt, arch_opt, None, cost, settings,
                             torch.Generator().manual_seed(0), dev, scaler)
    assert 0 < metrics["train_loss"] < 10 and 0 < scaler.get_scale() < float("inf")
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, _weights(net), strict=True))


@pytest.mark.parametrize("device", DEVICES)
def test_the_torch_profiling_backend_times_a_piece_on_the_device(device, tiny):
    backend = TorchBackend(1, device)
    piece = space_pieces(tiny)[-1]
    backend.prepare(piece)
    times = backend.time(piece, 2, 5)
    assert len(times) == 5 and all(0 < t < 1000 for t in times)  # milliseconds
    info = backend.describe()
    assert info["device"].startswith(device) and ("gpu" in info) == (device == "cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_a_ddp_replica_trains_the_supernet_on_the_device_backend(device, digits, tiny, cost, tmp_path):
    # One GPU holds one NCCL rank, so this is a process group of one; `wrap` wraps only for several ranks, so it is
    # told two: what runs is edgenas's DDP set-up (alpha and the mask ignored, unused parameters searched,
    # device_ids) on a real NCCL (GPU) or Gloo (CPU) group, while the epoch's own reductions see a world of one.
    import torch.distributed as dist

    dev = Device.pick("cuda:0" if device == "cuda" else "cpu")  # as under torchrun: DDP's device_ids need the index
    dist.init_process_group("nccl" if device == "cuda" else "gloo", init_method=f"file://{tmp_path / 'store'}",
                            rank=0, world_size=1)
    try:
        data = digits.to(dev.device)
        torch.manual_seed(0)
        net = dev.prepare(Supernet(tiny, data.num_classes))
        replica = wrap(net, Ranks(rank=0, world=2), dev.device)
        assert isinstance(replica, torch.nn.parallel.DistributedDataParallel)
        reference = copy.deepcopy(net)
        weight_opt, arch_opt = _optimizers(net)
        settings = SupernetSettings(32, 0.1, 2, 2.0, None, None)
        metrics = supernet_epoch(net, data, [0, 1, 2], weight_opt, arch_opt, None, cost, settings,
                                 torch.Generator().manual_seed(0), dev, dev.scaler(), replica=replica)
        assert metrics["steps"] >= 3 and metrics["arch_steps"] >= 2 and 0 < metrics["train_loss"] < 10
        assert any(not torch.equal(a, b) for a, b in zip(_weights(reference), _weights(net), strict=True))
        assert not torch.equal(reference.alpha, net.alpha)
    finally:
        dist.destroy_process_group()
