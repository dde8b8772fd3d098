"""A run's weights: written as plain state dicts, read back safely, and its network built with them."""

from __future__ import annotations

from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes
from edgenas.runs.folder import Run, load_weights
from edgenas.space.arch import from_dict
from edgenas.space.network import build_model


def save_weights(path: Path, model) -> None:
    """A module's state dict, as CPU tensors, written atomically (loadable with `weights_only=True`)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_model(run_path: str | Path, weights: str = "model.pt"):
    """A run's network with its weights (`model.pt`: retrained; `inherited.pt`: the supernet's), loaded safely."""
    run = Run.open(run_path)
    arch = from_dict(run.read("arch.json", "architecture file"), str(run.file("arch.json")))
    model = build_model(arch)
    path = run.file(weights)
    if not path.is_file():
        raise EdgeNASError(f"{path} does not exist")
    state = load_weights(path, str(path))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
        raise EdgeNASError(f"{path} does not match {run.file('arch.json')}: {str(exc).splitlines()[0]}") from None
    return model.eval(), arch
