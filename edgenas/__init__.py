"""edgenas: find, prove and ship small image classifiers for edge devices.

The Python API: `edgenas.search(...)` and `edgenas.profile(...)` (see `api.py`), `edgenas.check(run)` (the run against
random architectures of its budget), `edgenas.load_model(run)` (a run's network as a plain `torch.nn.Module`),
`exporters.export_onnx(...)`.
Importing this package does not import torch; the functions that need it import it.
"""

from edgenas.errors import EdgeNASError
from edgenas.version import __version__

__all__ = ["EdgeNASError", "__version__", "check", "load_model", "profile", "search"]


def search(data=None, **options):
    """Search on `data` under FLOPs/latency budgets and retrain: see `edgenas.api.search`."""
    from edgenas.api import search as run

    return run(data, **options)


def check(run, random: int = 3, seeds: int = 1, **options):
    """Train `random` architectures of a finished run's budget (and MobileNetV2) with the run's own recipe and rank
    the searched network among them: a `CheckResult` (`.rank`, `.margin_points`, `.margin_se_points`, `.arms`),
    also in RUN/check.json. `seeds`: retrainings of every network (the searched one's first is the run's own), each
    with its own retraining seed. See `edgenas.searching.check.check`."""
    from edgenas.progress import silent
    from edgenas.searching.check import check as run_check

    return run_check(run, random, seeds=seeds, **{"log": silent, **options})


def load_model(run, weights: str = "model.pt"):
    """A run's network with its retrained weights (`weights="inherited.pt"`: the supernet's) as a plain
    `torch.nn.Module` in eval mode, loaded with `torch.load(weights_only=True)`; it takes N x 3 x R x R float
    images normalised with the run's mean and std and returns logits. Its architecture is `model.arch`."""
    from edgenas.runs.weights import load_model as load

    model, arch = load(run, weights)
    model.arch = arch
    return model


def profile(device: str, space: str = "mobile", **options):
    """Measure a space's blocks on this machine into a latency table: see `edgenas.api.profile`."""
    from edgenas.api import profile as run

    return run(device, space, **options)
