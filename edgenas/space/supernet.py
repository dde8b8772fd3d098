"""The supernet: every searchable layer is one inverted residual block of the layer's largest configuration
(largest kernel, largest expansion, squeeze-excite), and each candidate is a slice of it, as in Once-for-All:
kernel k is the central k x k of the depthwise kernel, expansion e the first e x C hidden channels (with their
batch norm and squeeze-excite weights), `skip` the identity, or where the layer changes shape a strided skip with
weights of its own (`skip.conv`, `skip.bn`). The layer is an `InvertedResidual` itself, so its parameter names are
those of any standalone block at that layer; `extract` slices each tensor to the standalone shape (no key is
renamed).

Why shared weights: with a separate block per candidate, a supernet of 12-13 candidates per layer did not learn
at all in 300 steps on the digits (loss at chance or worse), where one network learns in 40; the sampled paths
change the features every step. Sliced candidates see the same features, so the supernet trains like a network.

Architecture parameters (alpha) are one logit per candidate; pruned candidates are masked out of the softmax.
Training is single-path (ProxylessNAS): a weight step runs one sampled path; an alpha step runs two sampled paths
per layer joined by binary gates whose straight-through gradient gives ProxylessNAS's alpha gradient. Memory and
time per step stay those of one network whatever the number of candidates.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgenas.space.arch import Arch, make_arch
from edgenas.space.blocks import ConvBNAct, InvertedResidual
from edgenas.space.choices import make_divisible, parse_choice
from edgenas.space.network import Network, build_model
from edgenas.space.spec import Layer, Space


def _bn(x: Tensor, bn: nn.BatchNorm2d, channels: int) -> Tensor:
    """nn.BatchNorm2d on the first `channels` channels: slices of the running statistics are views, so batch norm
    updates the shared buffers in place; momentum None means a cumulative average, as in nn.BatchNorm2d."""
    momentum = bn.momentum
    if bn.training:
        bn.num_batches_tracked.add_(1)
        if momentum is None:
            momentum = 1.0 / float(bn.num_batches_tracked)
    return F.batch_norm(x, bn.running_mean[:channels], bn.running_var[:channels], bn.weight[:channels],
                        bn.bias[:channels], bn.training, momentum or 0.0, bn.eps)


class MixedLayer(InvertedResidual):
    """The largest block of a layer; `forward(x, path, logits)` runs candidate `path[0]`, or two joined by gates."""

    def __init__(self, layer: Layer, activation: str = "relu6"):
        blocks = [parse_choice(c) for c in layer.blocks]
        super().__init__(layer.in_channels, layer.out_channels, max(b.kernel for b in blocks),
                         max(b.expansion for b in blocks), layer.stride, se=any(b.se for b in blocks),
                         activation=activation)
        # Named as in blocks.StridedSkip, so `extract` copies it unrenamed; the identity has no weights.
        self.skip = (ConvBNAct(layer.in_channels, layer.out_channels, 1, layer.stride, act=False)
                     if layer.skip_is_strided else nn.Identity())
        self.choices = layer.choices
        self.specs = [parse_choice(c) for c in layer.choices]
        self.in_channels, self.stride = layer.in_channels, layer.stride

    def run(self, x: Tensor, index: int) -> Tensor:
        spec = self.specs[index]
        if spec is None:  # skip
            return self.skip(x)
        hidden = self.in_channels * spec.expansion
        h = x
        if spec.expansion != 1:
            h = self.expand.act(_bn(F.conv2d(x, self.expand.conv.weight[:hidden]), self.expand.bn, hidden))
        full = self.dw.conv.weight.shape[-1]
        cut = (full - spec.kernel) // 2
        kernel = self.dw.conv.weight[:hidden, :, cut:cut + spec.kernel, cut:cut + spec.kernel]
        h = F.conv2d(h, kernel, stride=self.stride, padding=spec.kernel // 2, groups=hidden)
        h = self.dw.act(_bn(h, self.dw.bn, hidden))  # the space's activation, as in the standalone block
        if spec.se:
            squeezed = make_divisible(hidden // 4)
            se = self.se
            scale = F.conv2d(F.adaptive_avg_pool2d(h, 1), se.fc1.weight[:squeezed, :hidden], se.fc1.bias[:squeezed])
            scale = F.conv2d(F.relu(scale), se.fc2.weight[:hidden, :squeezed], se.fc2.bias[:hidden])
            h = h * F.hardsigmoid(scale)
        out = _bn(F.conv2d(h, self.project.conv.weight[:, :hidden]), self.project.bn,
                  self.project.conv.weight.shape[0])
        return x + out if self.has_residual else out

    def forward(self, x: Tensor, path: tuple[int, ...], logits: Tensor | None = None) -> Tensor:
        first = self.run(x, path[0])
        if len(path) == 1:
            return first
        # Binary gates (1 on the sampled path, 0 on the other) with the gradient of their softmax probabilities:
        # dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i), ProxylessNAS's estimator over the two paths.
        # [1, 0] made on the device: a tensor of Python numbers is copied from the host, which on a GPU waits for
        # every queued kernel (once per layer and architecture step).
        p = torch.softmax(logits, 0)
        gates = torch.eye(2, device=p.device, dtype=p.dtype)[0] - p.detach() + p
        return gates[0] * first + gates[1] * self.run(x, path[1])


class Supernet(Network):
    def __init__(self, space: Space, num_classes: int):
        super().__init__(space, lambda layer: MixedLayer(layer, space.spec.activation), num_classes)
        self.space = space
        self.num_classes = num_classes
        width = max(len(layer.choices) for layer in space)
        valid = torch.zeros(len(space), width, dtype=torch.bool)
        for i, layer in enumerate(space):
            valid[i, : len(layer.choices)] = True
        self.alpha = nn.Parameter(torch.zeros(len(space), width))
        self.register_buffer("active", valid.clone())
        self._host: dict = {}  # host copies of the sampling weights; see `sample`

    def changed(self) -> None:
        """Alpha or the mask changed (an architecture step, pruning, loading): the next draw reads them again."""
        self._host = {}

    def load_state_dict(self, *args, **kwargs):
        self.changed()
        return super().load_state_dict(*args, **kwargs)

    def mixed_layers(self) -> list[MixedLayer]:
        return [block for stage in self.stages for block in stage]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def masked_logits(self) -> Tensor:
        return self.alpha.masked_fill(~self.active, -math.inf)

    def probs(self) -> Tensor:
        """Per layer, the probability of each candidate (0 for pruned or absent ones)."""
        return torch.softmax(self.masked_logits(), dim=1)

    def active_counts(self) -> list[int]:
        return self.active.sum(1).tolist()

    def sample(self, generator: torch.Generator, paths: int = 1, uniform: bool = False) -> list[tuple[int, ...]]:
        """Per layer, `paths` distinct candidates drawn from alpha's probabilities (or uniformly over active ones).

        Sampling runs on the CPU with an explicit generator, so every rank and every resumed run draws the same. It
        reads alpha from the device only when alpha or the mask changed since the last draw (`changed()`), so on a
        GPU the step loop synchronises with the host once per architecture step, not once per step.
        """
        key = "uniform" if uniform else "probs"
        if key not in self._host:
            with torch.no_grad():
                active = self.active.float().cpu()
                # A tiny floor keeps an active candidate drawable when its probability underflows to 0.
                weights = active if uniform else self.probs().detach().float().cpu() + 1e-12 * active
            self._host[key] = (weights, [int(n) for n in active.sum(1).tolist()])
        weights, counts = self._host[key]
        drawn = []
        for row, count in zip(weights, counts, strict=True):
            k = min(paths, count)
            drawn.append(tuple(torch.multinomial(row, k, replacement=False, generator=generator).tolist()))
        return drawn

    def forward(self, x: Tensor, paths: list[tuple[int, ...]]) -> Tensor:
        x = self.stem(x)
        logits = self.masked_logits()
        for i, (block, path) in enumerate(zip(self.mixed_layers(), paths, strict=True)):
            # Stacked, not indexed with a list (which would be copied from the host, see MixedLayer.forward).
            x = block(x, path, torch.stack([logits[i, j] for j in path]) if len(path) > 1 else None)
        return self.head(x)

    def path_of(self, arch: Arch) -> list[tuple[int]]:
        return [(layer.choices.index(choice),) for layer, choice in zip(self.space, arch.layers, strict=True)]

    def prune(self, ratio: float, scores: Tensor | None = None, keep: Tensor | None = None) -> list[list[str]]:
        """Drop, in every layer, the lowest-probability `ratio` of its active candidates (at least one stays), or
        the lowest-scored by `scores` (higher is better) when given; never one marked in `keep` (layers x
        candidates), so a layer may drop fewer.

        Ties go against the later candidate in the layer's list, so pruning is deterministic. Returns the choices
        dropped per layer.
        """
        self.changed()
        probs = self.probs().detach().cpu() if scores is None else scores.detach().cpu()
        dropped = []
        with torch.no_grad():
            for i, layer in enumerate(self.space):
                active = [j for j in range(len(layer.choices)) if self.active[i, j]]
                kept = max(1, len(active) - math.floor(len(active) * ratio))
                ranked = sorted(active, key=lambda j, row=probs[i]: (-float(row[j]), j))
                drop = [j for j in ranked[kept:] if keep is None or not bool(keep[i, j])]
                for j in drop:
                    self.active[i, j] = False
                dropped.append([layer.choices[j] for j in drop])
        return dropped

    def active_choices(self) -> list[list[str]]:
        return [[c for j, c in enumerate(layer.choices) if self.active[i, j]] for i, layer in enumerate(self.space)]

    def most_likely(self) -> Arch:
        probs = self.probs().detach().cpu()
        return make_arch(self.space, [layer.choices[int(probs[i, : len(layer.choices)].argmax())]
                                      for i, layer in enumerate(self.space)], self.num_classes)

    def extract(self, arch: Arch) -> Network:
        """The standalone network of `arch` carrying the supernet's weights: each tensor sliced to its shape."""
        model = build_model(arch)
        source = self.state_dict()
        state = {key: _slice(source[key], target.shape) for key, target in model.state_dict().items()}
        model.load_state_dict(state)
        return model.to(self.alpha.device)


def _slice(tensor: Tensor, shape: torch.Size) -> Tensor:
    """Leading channels in every dimension; the centre of a larger depthwise kernel."""
    index = []
    for dim, (have, want) in enumerate(zip(tensor.shape, shape, strict=True)):
        start = (have - want) // 2 if tensor.ndim == 4 and dim >= 2 else 0
        index.append(slice(start, start + want))
    return tensor[tuple(index)].clone()


def recalibrate_batch_norm(model: nn.Module, batches, forward=None) -> None:
    """Re-estimate batch-norm statistics as a plain average over `batches` of (images, labels) (inherited ones mix
    many paths): `torch.optim.swa_utils.update_bn`, through `forward(images)` when given (a supernet runs a path).

    Every batch norm's statistics are reset and averaged over the batches in training mode, then its momentum and
    the model's mode are restored (tests/test_supernet.py compares it with the hand-written loop it replaced)."""
    from torch.optim.swa_utils import update_bn

    update_bn(batches, model if forward is None else _Through(model, forward))


class _Through(nn.Module):
    """`model` run by `forward(x)`: its modules (batch norms included) and its training mode, another call."""

    def __init__(self, model: nn.Module, forward):
        super().__init__()
        self.model, self.run = model, forward
        self.training = model.training  # restored by update_bn at the end, as the model's own mode

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x)
