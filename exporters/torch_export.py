"""A run's network as one `torch.export` file (`.pt2`), for deployment with PyTorch alone, without edgenas:
`torch.export.load("model.pt2").module()` is the network (eval mode, any batch size).

The file holds the class names and preprocessing as extra files (`edgenas.classes`, `edgenas.preprocessing`); the
loaded program must give the eager network's outputs on a batch of random inputs before it is written.
(TorchScript is not offered: this PyTorch deprecates torch.jit.save in favour of torch.export.)
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from edgenas.errors import EdgeNASError
from edgenas.files import atomic_write_bytes


def pt2_path(onnx: Path) -> Path:
    """`model.onnx` -> `model.pt2`, beside it."""
    return onnx.with_suffix(".pt2")


def write_pt2(model, arch, describe: dict, out: Path, atol: float = 1e-5) -> Path:
    import torch

    model = model.eval()
    shape = (3, arch.resolution, arch.resolution)
    extra = {"edgenas.classes": json.dumps(describe["classes"]),
             "edgenas.preprocessing": json.dumps({"resolution": arch.resolution, "mean": describe["mean"],
                                                  "std": describe["std"], "channels": "RGB", "layout": "NCHW"})}
    with torch.no_grad():
        program = torch.export.export(model, (torch.zeros(2, *shape),),
                                      dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        buffer = io.BytesIO()
        torch.export.save(program, buffer, extra_files=extra)
        loaded = torch.export.load(io.BytesIO(buffer.getvalue())).module()
        probe = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
        difference = float((loaded(probe) - model(probe)).abs().max())
    if difference > atol:
        raise EdgeNASError(f"the torch.export program of {out} differs from the network by {difference:.2e} (above "
                           f"{atol:g}); nothing was written")
    return atomic_write_bytes(out, buffer.getvalue())
