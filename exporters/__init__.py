"""exporters: ONNX export of edgenas networks and their verification with ONNX Runtime.

Depends on `edgenas`, never the other way round (edgenas reaches it only from its CLI and its profiler).
"""
