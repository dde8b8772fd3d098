"""litert-torch's conversion of a PyTorch module to a LiteRT flatbuffer, FP32 or INT8 (its PT2E quantiser): the one
route behind `edgenas export model.tflite` (a whole network, 3-channel image in) and `edgenas profile --backend
litert` (a piece of a space: any channel count, batch 1).

Inside a LiteRT graph activations are NHWC, so a module is converted with NHWC input and, where its output is a
feature map, NHWC output (`litert_torch.to_channel_last_io`: a permute at each end, which the converter folds into
the first and last operators; a converted block of mobile-small holds no TRANSPOSE, tests/test_profile_runtimes.py).
A piece's timing is then what it costs between two other pieces of a deployed network, and a network's, or a piece
whose input is the image, is what the exported file runs (its input is NHWC too).
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np

from edgenas.errors import EdgeNASError

PROGRESS = "LITERT_TORCH_SHOW_PROGRESS"


def quiet_native_logs() -> None:
    """LiteRT's C++ code writes INFO lines ("Created TensorFlow Lite XNNPACK delegate", the converter's op counts)
    to file descriptor 2, past Python, into the middle of edgenas's output: off unless the user chose a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


@contextlib.contextmanager
def quiet_litert_torch():
    """litert-torch, imported and run quietly: its progress drawing (on unless its variable says no) and torch's
    one-line deprecation notice on importing torchao are off inside, as they were before outside."""
    quiet_native_logs()
    previous = os.environ.get(PROGRESS)
    os.environ[PROGRESS] = "n"
    pytree = logging.getLogger("torch.utils._pytree")
    level = pytree.level
    pytree.setLevel(logging.ERROR)
    try:
        import litert_torch

        yield litert_torch
    finally:
        pytree.setLevel(level)
        os.environ.pop(PROGRESS)
        os.environ.update({} if previous is None else {PROGRESS: previous})


def channel_last(litert_torch, model, input_shape: tuple[int, int, int]):
    """`model` (eval mode) taking and, where it gives a feature map, giving NHWC tensors."""
    import torch

    with torch.no_grad():
        feature_map = model.eval()(torch.zeros(1, *input_shape)).dim() == 4
    return litert_torch.to_channel_last_io(model, args=[0], outputs=[0] if feature_map else None).eval()


def nhwc(input_shape: tuple[int, int, int], batch: int = 1) -> tuple[int, int, int, int]:
    channels, height, width = input_shape
    return batch, height, width, channels


def fp32_flatbuffer(model, input_shape: tuple[int, int, int], what: str = "the network") -> bytes:
    """The FP32 flatbuffer of `model` (eval mode) for NHWC inputs of 1 x H x W x C (`input_shape` is C x H x W)."""
    import torch

    with quiet_litert_torch() as litert_torch:
        wrapped = channel_last(litert_torch, model, input_shape)
        try:
            with torch.no_grad():
                return bytes(litert_torch.convert(wrapped, (torch.zeros(nhwc(input_shape)),)).model_content())
        except Exception as exc:  # litert-torch raises torch.export's and the MLIR converter's own types
            raise EdgeNASError(f"litert-torch cannot convert {what}: {first_line(exc)}") from None


def int8_flatbuffer(model, input_shape: tuple[int, int, int], calibration: list[np.ndarray],
                    what: str = "the network") -> bytes:
    """The INT8 flatbuffer of `model` (litert.INT8_RECIPE) for NHWC inputs of 1 x H x W x C: exported whole (strict:
    torch.export then sees the residual additions, which the quantiser annotates), observed on `calibration` (NCHW
    batches of `input_shape`), converted by litert-torch."""
    import torch

    with quiet_litert_torch() as litert_torch:
        from litert_torch.quantize import pt2e_quantizer
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        wrapped = channel_last(litert_torch, model, input_shape)
        config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(config)
        try:
            with torch.no_grad():
                batch = torch.export.Dim("batch", min=1)  # calibrated a batch at a time, converted for batch 1
                two = (torch.zeros(nhwc(input_shape, 2)),)  # a batch of 1 would be specialised to 1
                exported = torch.export.export(wrapped, two, dynamic_shapes=(({0: batch},),), strict=True)
                observed = prepare_pt2e(exported.module(), quantizer)
                move_exported_model_to_eval(observed)
                for images in calibration:
                    observed(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 2, 3, 1))))
                quantized = convert_pt2e(observed, fold_quantize=False)
                # An exported graph's ops are fixed (eval's were chosen above); only litert-torch's "converted in
                # training mode" warning reads the flag, and a GraphModule refuses .eval().
                quantized.training = False
                converted = litert_torch.convert(quantized, (torch.zeros(nhwc(input_shape)),),
                                                 quant_config=QuantConfig(pt2e_quantizer=quantizer))
        except Exception as exc:  # torch.export, torchao and litert-torch raise many types: say which step failed
            raise EdgeNASError(f"INT8 conversion of {what} by litert-torch failed: {first_line(exc)}") from None
        return bytes(converted.model_content())


def operators(flat: bytes) -> dict[str, int]:
    """How many operators of each kind the flatbuffer's main graph runs ({"CONV_2D": 3, ...})."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(flat, 0)
    graph = model.Subgraphs(0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    counts: dict[str, int] = {}
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        # the schema keeps small codes in the deprecated byte too; the larger of the two is the operator
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        counts[name] = counts.get(name, 0) + 1
    return counts


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
