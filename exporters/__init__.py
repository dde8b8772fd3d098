"""exporters: ONNX export of edgenas networks and their verification with ONNX Runtime.

Depends on `edgenas`, never the other way round (edgenas reaches it only from its CLI and its profiler).
Python API: `export_onnx(run, out)` writes a self-describing ONNX file and proves it against PyTorch (an
`ExportResult`: `.path`, `.report`, `.passed`); `verify(onnx, run)` is that proof alone, returning the report;
`predict(onnx, images)` classifies image files with ONNX Runtime alone.
"""

from exporters.export import ExportResult, export_onnx
from exporters.onnx_export import read_metadata
from exporters.predict import predict
from exporters.verify import verify

__all__ = ["ExportResult", "export_onnx", "predict", "read_metadata", "verify"]
