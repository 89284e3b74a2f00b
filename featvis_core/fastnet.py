"""A faster copy of the network for rendering: batch norm folded into convolutions, padding into convs.

In eval mode a BatchNorm2d is a per-channel affine map, so a convolution followed by it is one
convolution with rescaled weights and a bias. Folding it removes the batch-norm forward *and* backward, a
quarter of a CPU step on EfficientNet (bench/README.md). A ZeroPad2d run inside a convolution
(TensorFlow-style "same" padding, one-sided for stride 2) becomes the convolution's own padding, which
saves a copy each way. On CPU the bf16 copy keeps its strided depthwise convolutions in fp32.

Pairs are found from one probe forward pass (a BN whose input *is* a conv's output tensor), so this works
for any module tree without tracing. The copy keeps every module path, so hooks by name still work; the
modules whose outputs the renderer reads keep their own output. The copy is checked against the
original on a probe, and the original is used whenever they disagree.
"""

from __future__ import annotations

import copy
import weakref
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

_CACHE: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def conv_bn_pairs(module: nn.Module, probe: torch.Tensor) -> list[tuple[str, str]]:
    """(conv path, batch-norm path) for every BatchNorm2d fed directly by a Conv2d's output."""
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: list[tuple[str, str]] = []

    def hook(path: str):
        def record(layer, inputs, output):
            if isinstance(layer, nn.Conv2d):
                produced[id(output)] = (path, output)
            elif inputs and id(inputs[0]) in produced and produced[id(inputs[0])][1] is inputs[0]:
                pairs.append((produced[id(inputs[0])][0], path))

        return record

    handles = [m.register_forward_hook(hook(p)) for p, m in module.named_modules()
               if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    try:
        with torch.no_grad():
            module(probe)
    finally:
        for handle in handles:
            handle.remove()
    return pairs


def fold_batchnorm(module: nn.Module, pairs: Sequence[tuple[str, str]]) -> None:
    """In place: scale each conv's weights by its BN, give it the BN's shift as bias, drop the BN."""
    named = dict(module.named_modules())
    for conv_path, bn_path in pairs:
        conv, bn = named[conv_path], named[bn_path]
        with torch.no_grad():
            scale = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
            shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
            bias = shift if conv.bias is None else conv.bias * scale + shift
            conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
        _replace(module, bn_path, nn.Identity())


def fold_padding(module: nn.Module, keep: Sequence[str] = ()) -> None:
    """In place: a conv's ZeroPad2d child becomes the conv's own (symmetric) padding.

    TensorFlow "same" padding of a stride-2 conv is one-sided, e.g. (0, 1). Padding (l, r) is exact as
    symmetric padding max(l, r) with the kernel widened by one zero tap on the less padded side: every
    output reads the same input pixels with the same weights (and their count is unchanged). That
    removes a pad copy each way, and oneDNN's strided depthwise kernels are much faster on the unpadded
    even-sized input (bench/README.md)."""
    for path, conv in list(module.named_modules()):
        if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros" or tuple(conv.padding) != (0, 0):
            continue
        if tuple(conv.dilation) != (1, 1):
            continue
        for name, child in list(conv.named_children()):
            if not isinstance(child, nn.ZeroPad2d) or f"{path}.{name}".lstrip(".") in keep:
                continue
            left, right, top, bottom = child.padding
            if abs(left - right) > 1 or abs(top - bottom) > 1 or min(child.padding) < 0:
                continue
            taps = (int(left < right), int(right < left), int(top < bottom), int(bottom < top))
            if any(taps):
                conv.weight = nn.Parameter(F.pad(conv.weight.detach(), taps), requires_grad=False)
                conv.kernel_size = tuple(conv.weight.shape[-2:])
            conv.padding = (max(top, bottom), max(left, right))
            setattr(conv, name, nn.Identity())


class Float32Conv2d(nn.Conv2d):
    """A convolution that runs in fp32 even under bf16 autocast (its stored weights may be bf16).

    On CPU, oneDNN's bf16 backward of a *strided depthwise* convolution is 5-10x slower than fp32 (bench/
    README.md), while bf16 pays everywhere else; these few layers stay in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float()
        with torch.autocast(x.device.type, enabled=False):
            return self._conv_forward(x.float(), self.weight.float(), bias)


def strided_depthwise_in_fp32(module: nn.Module, keep: Sequence[str] = ()) -> None:
    """In place: strided depthwise convs (already padding-folded, plain forward) become Float32Conv2d."""
    for path, conv in list(module.named_modules()):
        plain = isinstance(conv, nn.Conv2d) and all(isinstance(c, nn.Identity) for c in conv.children())
        if not plain or path in keep or conv.groups == 1 or conv.groups != conv.in_channels:
            continue
        if max(conv.stride) == 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            continue
        if type(conv).forward is not nn.Conv2d.forward and not _static_same(conv):
            continue  # a subclass with its own forward we do not know
        new = Float32Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            conv.dilation, conv.groups, conv.bias is not None, device=conv.weight.device)
        new.weight, new.bias = conv.weight, conv.bias
        _replace(module, path, new.eval().requires_grad_(False))


def _static_same(conv: nn.Conv2d) -> bool:
    """efficientnet_pytorch's Conv2dStaticSamePadding: pad child (folded to Identity), then F.conv2d."""
    return type(conv).__name__ == "Conv2dStaticSamePadding"


def _replace(module: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, name, new)


def fused_copy(module: nn.Module, keep: Sequence[str], size: int, fp32_strided_depthwise: bool = False,
               channels: int = 3) -> nn.Module:
    """A deep copy with batch norm and padding folded, leaving the outputs of `keep` unchanged."""
    device = next(module.parameters(), torch.zeros(())).device
    fused = copy.deepcopy(module)
    probe = torch.zeros(1, channels, size, size, device=device)
    pairs = [(c, b) for c, b in conv_bn_pairs(fused, probe) if c not in keep]
    fold_batchnorm(fused, pairs)
    fold_padding(fused, keep)
    if fp32_strided_depthwise:
        strided_depthwise_in_fp32(fused, keep)
    sequence_first_attention(fused)
    return fused.eval().requires_grad_(False)


def sequence_first_attention(module: nn.Module) -> None:
    """Lay the inputs of every batch-first `nn.MultiheadAttention` out sequence-first in memory.

    Such a layer transposes its `[B, N, D]` input to `[N, B, D]`; with gradients on (as in a render step) the
    in-projection of that non-contiguous view runs as a batched matmul with the weight expanded once per
    token. On ViT-B/16 at batch 2 that is a 700 MB copy per block and 60 % of the step (torch.profiler,
    this machine). Stored sequence-first, the transposed view is contiguous and the projection is one
    matrix product; the values are the same."""
    for layer in module.modules():
        if isinstance(layer, nn.MultiheadAttention) and layer.batch_first:
            layer.register_forward_pre_hook(_stored_sequence_first)


def _stored_sequence_first(_layer: nn.Module, args: tuple) -> tuple:
    relaid: dict[int, torch.Tensor] = {}  # query, key and value are often one tensor: keep them one

    def lay(x):
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            return x
        if id(x) not in relaid:
            relaid[id(x)] = x.transpose(0, 1).contiguous().transpose(0, 1)
        return relaid[id(x)]

    return tuple(lay(a) for a in args)


@torch.no_grad()
def agrees(original: nn.Module, fused: nn.Module, paths: Sequence[str], size: int, channels: int = 3) -> bool:
    """Do the two networks give the same outputs at `paths` and at the output, on a random probe?"""
    device = next(original.parameters(), torch.zeros(())).device
    x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    x = x.contiguous(memory_format=torch.channels_last)

    def outputs(net: nn.Module) -> list[torch.Tensor]:
        seen: dict[str, torch.Tensor] = {}
        handles = [net.get_submodule(p).register_forward_hook(lambda _m, _i, o, p=p: seen.__setitem__(p, o))
                   for p in paths]
        try:
            final = net(x)
        finally:
            for handle in handles:
                handle.remove()
        return [seen[p] for p in paths] + [final]

    for a, b in zip(outputs(original), outputs(fused)):
        if a.shape != b.shape or (a - b).abs().max() > 1e-3 * (1 + a.abs().max()):
            return False
    return True


def render_network(owner: object, module: nn.Module, keep: Sequence[str], size: int,
                   dtype: torch.dtype = torch.float32) -> nn.Module:
    """The fused copy of `module` for rendering (cached per owner, kept layers and dtype), or `module`
    itself when folding would change an output. A bf16 copy spares autocast re-casting every weight at
    every step."""
    keep = tuple(sorted(p for p in keep if p))
    device = next(module.parameters(), torch.zeros(())).device
    cache = _CACHE.setdefault(owner, {})
    key = (keep, str(device), id(module), dtype)
    if key not in cache:
        channels = getattr(owner, "channels", 3)
        fused = fused_copy(module, keep, size, fp32_strided_depthwise=dtype != torch.float32 and device.type == "cpu",
                           channels=channels)
        if not agrees(module, fused, keep, size, channels):
            fused = module
        elif dtype != torch.float32:
            fused = fused.to(dtype)
        cache[key] = fused
    return cache[key]


def fast_bfloat16(device: torch.device) -> bool:
    """Is bf16 autocast a speed-up here? CUDA, or a CPU with AMX or AVX512-BF16 (oneDNN's bf16 kernels;
    without them bf16 is emulated and slower than fp32)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)
