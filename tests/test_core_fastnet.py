"""The renderer's speed-ups keep its results: folded network, bf16 switch, early stop on a plateau."""

import torch
from torch import nn

from featvis_core import FeatvisError, RenderConfig, render
from featvis_core.fastnet import conv_bn_pairs, fast_bfloat16, fused_copy, render_network
from featvis_core.render import plateau_update
from featvis_core.units import parse_selector


def test_fused_copy_matches_the_network_at_every_layer(lite0):
    fused = fused_copy(lite0.module, ["_blocks.10"], 224)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in lite0.module.modules())  # the original is untouched
    x = torch.rand(2, 3, 96, 96)
    seen = {}
    for name, net in (("a", lite0.module), ("b", fused)):
        handle = net.get_submodule("_blocks.10").register_forward_hook(lambda _m, _i, o, n=name: seen.__setitem__(n, o))
        with torch.no_grad():
            seen[name + "_logits"] = net(x)
        handle.remove()
    torch.testing.assert_close(seen["b"], seen["a"], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(seen["b_logits"], seen["a_logits"], atol=1e-3, rtol=1e-3)


def test_a_kept_convolution_keeps_its_own_output(lite0):
    conv = "_blocks.4._expand_conv"
    assert any(c == conv for c, _ in conv_bn_pairs(lite0.module, torch.zeros(1, 3, 64, 64)))
    net = render_network(lite0, lite0.module, [conv], 224)
    assert isinstance(net.get_submodule("_blocks.4._bn0"), nn.BatchNorm2d)


def test_bf16_is_only_chosen_where_it_is_fast():
    assert fast_bfloat16(torch.device("cuda")) is True
    assert isinstance(fast_bfloat16(torch.device("cpu")), bool)


def test_precision_is_a_checked_setting(lite0, tiny):
    try:
        RenderConfig(precision="fp8")
    except FeatvisError as error:
        assert "precision" in str(error)
    else:
        raise AssertionError("fp8 accepted")
    [a] = render(lite0, parse_selector("blocks.4:3", 40), tiny.replace(precision="fp32", steps=8))
    [b] = render(lite0, parse_selector("blocks.4:3", 40), tiny.replace(precision="bf16", steps=8))
    assert a.final > a.start and b.final > b.start


def test_plateau_needs_a_real_improvement():
    reference, at = torch.full((3,), float("inf")), torch.zeros(3, dtype=torch.long)
    reference, at = plateau_update(torch.tensor([-10.0, -10.0, float("nan")]), reference, at, 1)
    assert at.tolist() == [1, 1, 0]
    reference, at = plateau_update(torch.tensor([-10.05, -12.0, -1.0]), reference, at, 2)
    assert at.tolist() == [1, 2, 2] and reference[0] == -10.0  # 0.5 % is noise, 20 % is progress


def test_early_stop_ends_a_plateaued_run(lite0, tiny):
    config = tiny.replace(steps=200, lr=1e-6, early_stop=16, best=False)  # lr ~ 0: flat from the start
    [result] = render(lite0, parse_selector("blocks.4:3", 40), config)
    assert result.steps < 200 and len(result.history) == result.steps


def test_one_sided_padding_folds_exactly_into_a_wider_kernel():
    """TF "same" padding (0, 1) / (1, 2) of stride-2 convs becomes symmetric padding + a zero tap."""
    from featvis_core.fastnet import fold_padding

    for pads, kernel, groups in (((0, 1, 0, 1), 3, 1), ((1, 2, 1, 2), 5, 8), ((1, 0, 2, 1), 3, 8), ((1, 1, 1, 1), 3, 1)):
        net = nn.Sequential(nn.Conv2d(8, 8, kernel, stride=2, groups=groups, bias=False))
        net[0].add_module("pad", nn.ZeroPad2d(pads))
        net[0].forward = lambda x, conv=net[0]: nn.Conv2d.forward(conv, conv.pad(x))
        x = torch.randn(2, 8, 17, 16)
        with torch.no_grad():
            before = net(x)
            fold_padding(net)
            after = nn.Conv2d.forward(net[0], x)
        assert isinstance(net[0].pad, nn.Identity)
        assert tuple(net[0].padding) == (max(pads[2:]), max(pads[:2]))
        torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_strided_depthwise_convs_stay_fp32_in_a_bf16_cpu_copy(lite0):
    from featvis_core.fastnet import Float32Conv2d

    net = render_network(lite0, lite0.module, ["_blocks.10"], 224, torch.bfloat16)
    kept = {p for p, m in net.named_modules() if isinstance(m, Float32Conv2d)}
    assert kept == {"_blocks.1._depthwise_conv", "_blocks.3._depthwise_conv", "_blocks.5._depthwise_conv",
                    "_blocks.11._depthwise_conv"}
    plain_bf16 = fused_copy(lite0.module, ["_blocks.10"], 224).to(torch.bfloat16)
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, plain = net(x), plain_bf16(x)
    assert mixed.dtype == torch.bfloat16
    torch.testing.assert_close(mixed.float(), plain.float(), atol=0.05, rtol=0.02)  # speed, not results


def test_the_allocator_setting_is_safe_to_call_twice():
    from featvis_core.hostmem import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
    assert torch.ones(4096, 4096).sum() == 4096 * 4096  # large allocations still work
