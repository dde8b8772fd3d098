"""edgenas's metadata, which every exported file carries (in the file, or in a sidecar where its format cannot):
the architecture JSON, the space hash, the class names, the preprocessing (resolution, mean, std) and what exported
it; so that `edgenas predict` uses a file without edgenas's PyTorch code, and the verifier checks that a file holds
the run's architecture. Each runtime stores the same keys and values its own way (`Runtime.metadata` reads them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgenas.errors import EdgeNASError


def file_metadata(arch, describe: dict, opset: int) -> dict[str, str]:
    """The metadata keys and values (JSON strings) of a run's exported network, in the order the files hold them."""
    import torch

    return {"edgenas.arch": json.dumps(arch.to_dict()), "edgenas.space_hash": arch.space_hash,
            "edgenas.classes": json.dumps(describe["classes"]),
            "edgenas.preprocessing": json.dumps({"resolution": arch.resolution, "mean": describe["mean"],
                                                 "std": describe["std"], "channels": "RGB", "layout": "NCHW",
                                                 "scale": "pixel / 255, then (x - mean) / std",
                                                 "resize": "shorter side to resolution, centre crop"}),
            "edgenas.exported_with": json.dumps({"torch": torch.__version__, "opset": opset})}


def read_metadata(path: str | os.PathLike) -> dict:
    """The edgenas metadata of an exported file (.onnx, .xml, ...; its runtime by the suffix), parsed."""
    from exporters.runtimes import runtime_for_path

    props = runtime_for_path(path).metadata(Path(path))
    if "edgenas.preprocessing" not in props:
        raise EdgeNASError(f"{path} was not exported by edgenas (no edgenas.preprocessing metadata)")
    return {"arch": json.loads(props["edgenas.arch"]), "space_hash": props["edgenas.space_hash"],
            "classes": json.loads(props["edgenas.classes"]),
            "preprocessing": json.loads(props["edgenas.preprocessing"])}
