"""exporters: export of edgenas networks to the runtimes edge devices run (ONNX Runtime, OpenVINO, LiteRT:
`runtimes/`), each file proven on its own runtime against PyTorch.

Depends on `edgenas`, never the other way round (edgenas reaches it only from its CLI and its profiler).
Python API: `export_model(run, out)` (also `export_onnx`, its name before other runtimes) writes a self-describing
file in the format of OUT's suffix (.onnx, .xml, .tflite) and proves it (an `ExportResult`: `.path`, `.report`,
`.passed`); `verify(path, run)` is that proof alone, returning the report; `predict(path, images)` classifies image
files with the file's runtime alone; `read_metadata(path)` gives the metadata every exported file carries.
"""

from exporters.export import ExportResult, export_model, export_onnx
from exporters.metadata import read_metadata
from exporters.predict import predict
from exporters.verify import verify

__all__ = ["ExportResult", "export_model", "export_onnx", "predict", "read_metadata", "verify"]
