"""The memory of a deployed network, counted from its built modules: the bytes of its weights at a deployment
precision (model size) and the peak of its live activation bytes at batch 1 (peak memory).

Both are counted on the module as deployment runs it: in eval mode, batch norm folded into the convolution before
it (torch.fx's `fuse`), so that the count follows the blocks wherever they change, with no formula per block.

Model size. FP32: 4 bytes a parameter after folding (convolution and linear weights and biases). INT8, as a
per-channel INT8 deployment stores the weights: 1 byte a weight, and per output channel of each convolution and
linear layer a float32 scale (4 bytes), an int8 zero point (1 byte) and an int32 bias (4 bytes); any other
parameter stays float32. Not counted: the activations' own scales and zero points (a few bytes per tensor), the
biases' scales and zero points that an ONNX QDQ file repeats, and the file format's structure (docs/COSTS.md).

Peak memory. The activation tensors of one forward pass at batch 1, in execution order, each live from the operation
that writes it to the last one that reads it; the peak is the largest sum of live elements at any operation (inputs
that are still needed, and its output), times the bytes of an element (FP32 4, INT8 1). An activation, identity,
dropout or flatten whose input has no other reader works in place (a deployed convolution fuses its activation) and
adds no tensor. So an inverted residual with a residual connection holds its input while its expansion output,
depthwise output (and squeeze-excite product) and projection output are written. A strided convolution whose
padding TFLite cannot fold into it (PyTorch pads k // 2 on every side; TFLite's SAME padding puts an odd pixel after)
reads a padded copy of its input, which LiteRT's converter writes with a PAD operation: the copy is counted, live from
the PAD to the convolution. With it the count equals the peak of live tensors of the LiteRT file, and TFLite Micro's
arena to within its planner's packing (docs/COSTS.md). Scratch buffers that a runtime's kernels ask for (im2col,
depthwise INT8 buffers) are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("fp32", "int8")
ELEMENT_BYTES = {"fp32": 4, "int8": 1}  # an activation element, and an FP32 parameter is 4 bytes
INT8_PER_CHANNEL = 4 + 1  # a float32 scale and an int8 zero point per output channel
BIAS_BYTES_INT8 = 4  # an int32 bias

# Modules and functions that a deployment runs in place on their input (when nothing else reads it).
_IN_PLACE_MODULES = ("Identity", "Dropout", "ReLU", "ReLU6", "Hardtanh", "Hardsigmoid", "Hardswish", "Sigmoid",
                     "SiLU", "Flatten")
_IN_PLACE_FUNCTIONS = ("flatten", "reshape", "view", "relu", "relu6", "hardtanh", "hardsigmoid", "dropout")


@dataclass(frozen=True)
class Counts:
    """What one module holds and needs: weight elements of its convolution and linear layers, their output channels
    (one scale and zero point each), bias elements and other parameter elements, all after batch norm is folded; the
    peak of live activation elements at batch 1, and for a module whose last operation writes its output (the head's
    classifier), `before_last` (the peak of the operations before it) and `beside_last` (what else is live then)."""

    weights: int = 0
    channels: int = 0
    biases: int = 0
    other: int = 0
    peak: int = 0
    before_last: int = 0
    beside_last: int = 0

    def size(self, precision: str) -> int:
        """Bytes of the weights at `precision` (fp32 or int8)."""
        if precision == "fp32":
            return 4 * (self.weights + self.biases + self.other)
        return self.weights + INT8_PER_CHANNEL * self.channels + BIAS_BYTES_INT8 * self.biases + 4 * self.other

    def to_list(self) -> list[int]:
        return [self.weights, self.channels, self.biases, self.other, self.peak, self.before_last, self.beside_last]

    @classmethod
    def from_list(cls, values) -> Counts:
        return cls(*(int(v) for v in values))


def check_precision(precision: str) -> str:
    from edgenas.errors import EdgeNASError

    if precision not in PRECISIONS:
        raise EdgeNASError(f"bad precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def count_memory(module, input_shape: tuple[int, ...]) -> Counts:
    """The counts of `module` on one input of `input_shape` (no batch axis), batch norm folded."""
    import torch
    from torch.fx.experimental.optimization import fuse
    from torch.fx.passes.shape_prop import ShapeProp

    was_training = module.training
    module.eval()
    try:
        folded = fuse(module)  # a copy, batch norm folded into the convolutions
        with torch.no_grad():
            ShapeProp(folded).propagate(torch.zeros(1, *input_shape))
    finally:
        module.train(was_training)
    steps, output = _live_steps(folded)
    weights = _weights(folded)
    return Counts(*weights, peak=max(steps, default=0), before_last=max(steps[:-1], default=0),
                  beside_last=(steps[-1] - output) if steps else 0)


def _weights(module) -> tuple[int, int, int, int]:
    """(weight elements, output channels, bias elements, other parameter elements) of a folded module."""
    from torch import nn

    weights = channels = biases = 0
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            weights += layer.weight.numel()
            channels += layer.weight.shape[0]
            biases += 0 if layer.bias is None else layer.bias.numel()
    total = sum(p.numel() for p in module.parameters())
    return weights, channels, biases, total - weights - biases


def _elements(node) -> int:
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    if shape is None:
        return 0
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def _in_place(node, modules: dict) -> bool:
    """Whether `node` runs in place on its first input: an in-place kind, and nothing else reads that input."""
    inputs = node.all_input_nodes
    if not inputs or len(inputs[0].users) != 1:
        return False
    if node.op == "call_module":
        return type(modules[node.target]).__name__ in _IN_PLACE_MODULES
    if node.op in ("call_function", "call_method"):
        return getattr(node.target, "__name__", str(node.target)) in _IN_PLACE_FUNCTIONS
    return False


def _padded_copy(node, modules: dict) -> int:
    """Elements of the padded copy of its input that `node` reads: a convolution whose padding is not TFLite's SAME
    padding for its input size (in practice a strided one on an even size), else 0."""
    from torch import nn

    if node.op != "call_module" or not isinstance(modules[node.target], nn.Conv2d):
        return 0
    conv = modules[node.target]
    if isinstance(conv.padding, str):
        return 0
    _, channels, height, width = (int(d) for d in node.all_input_nodes[0].meta["tensor_meta"].shape)
    sizes = (height, width)
    if all(_same(*args) for args in zip(sizes, conv.kernel_size, conv.stride, conv.padding, strict=True)):
        return 0
    (pad_h, pad_w) = conv.padding
    return channels * (height + 2 * pad_h) * (width + 2 * pad_w)


def _same(size: int, kernel: int, stride: int, padding: int) -> bool:
    """Whether padding `padding` on both sides computes what TFLite's SAME padding does on `size`."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2 == padding and (size + 2 * padding - kernel) // stride + 1 == out


def _live_steps(graph_module) -> tuple[list[int], int]:
    """Per operation that writes a tensor, in execution order, the live activation elements while it runs; and the
    elements of the graph's output. Node k runs at position 2k + 1; a padded copy is written at 2k."""
    modules = dict(graph_module.named_modules())
    buffer, size, written, last_read, writes, output = {}, {}, {}, {}, [], 0
    for k, node in enumerate(graph_module.graph.nodes):
        at = 2 * k + 1
        inputs = [source for source in node.all_input_nodes if source in buffer]  # a get_attr is a weight
        padded = _padded_copy(node, modules)
        if padded:  # the PAD reads the input at 2k, the convolution reads the copy
            copy = ("pad", node)
            last_read[buffer[inputs[0]]] = at - 1
            size[copy], written[copy], last_read[copy] = padded, at - 1, at
            writes.append(at - 1)
            inputs = inputs[1:]
        for source in inputs:
            last_read[buffer[source]] = at
        if node.op == "output":
            output = sum(size[buffer[source]] for source in node.all_input_nodes if source in buffer)
        elif node.op != "placeholder" and _in_place(node, modules):
            buffer[node] = buffer[node.all_input_nodes[0]]
        elif node.op != "get_attr":
            buffer[node], size[node], written[node] = node, _elements(node), at
            if node.op != "placeholder":
                writes.append(at)
    steps = [sum(size[b] for b, start in written.items() if start <= at <= last_read.get(b, start))
             for at in writes]
    return steps, output
