"""edgenas: find, prove and ship small image classifiers for edge devices.

The Python API: `edgenas.search(...)` and `edgenas.profile(...)` (see `api.py`), `exporters.export_onnx(...)`.
Importing this package does not import torch; the functions that need it import it.
"""

from .errors import EdgeNASError

__version__ = "0.1.0"
__all__ = ["EdgeNASError", "__version__", "profile", "search"]


def search(data=None, **options):
    """Search on `data` under FLOPs/latency budgets and retrain: see `edgenas.api.search`."""
    from .api import search as run

    return run(data, **options)


def profile(device: str, space: str = "mobile", **options):
    """Measure a space's blocks on this machine into a latency table: see `edgenas.api.profile`."""
    from .api import profile as run

    return run(device, space, **options)
