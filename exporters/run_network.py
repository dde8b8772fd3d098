"""A run's network as the exporters take it: the retrained weights (or, when allowed, the supernet's), the
architecture, and what describes its inputs (class names, mean and standard deviation).
"""

from __future__ import annotations

import os

from edgenas.errors import EdgeNASError


def load_run_network(run: str | os.PathLike, allow_supernet_weights: bool = False, warn=print):
    """The run's retrained network (eval mode), its architecture and what describes its inputs."""
    from edgenas.runs.folder import Run
    from edgenas.runs.weights import load_model

    opened = Run.open(run)
    weights = "model.pt"
    if not opened.has("model.pt"):
        if not allow_supernet_weights:
            opened.need_retrained(", or pass --allow-supernet-weights")
        if not opened.has("inherited.pt"):
            raise EdgeNASError(f"run {opened.path} has no derived network yet; finish it with "
                               f"`edgenas search --resume {opened.path}`")
        warn(f"warning: exporting {opened.path}'s supernet weights (inherited.pt), not a retrained network: "
             "accuracy will be lower than after retraining")
        weights = "inherited.pt"
    model, arch = load_model(opened.path, weights)
    data = opened.config().get("resolved", {}).get("data", {})
    try:
        describe = {"classes": list(data["classes"]), "mean": list(data["mean"]), "std": list(data["std"])}
    except KeyError as exc:
        raise EdgeNASError(f"run {opened.path}: config.json lacks the data description ({exc})") from None
    return model, arch, describe
