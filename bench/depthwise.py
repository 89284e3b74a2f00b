"""Why the render copy keeps strided depthwise convolutions in fp32 and folds one-sided padding.

Times forward + input backward of EfficientNet-Lite0's three strided depthwise convolutions before
blocks.10 (shapes as in the network at 224 px input), channels_last, in four forms:

- `pad + conv`: TensorFlow "same" padding as a separate ZeroPad2d (the network as shipped);
- `wider kernel`: the padding folded into the conv (kernel + 1 zero tap, symmetric padding; exact);
- each in fp32 and in bf16; plus bf16 input cast to fp32 around the conv (what the render copy does).

    .venv/bin/python -m bench.depthwise                 # batch 16
    .venv/bin/python -m bench.depthwise --batch 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from featvis_core.hostmem import keep_freed_memory

# (channels, input side, kernel, one-sided padding) of _blocks.1/3/5._depthwise_conv at 224 px
SHAPES = [(96, 112, 3, (0, 1)), (144, 56, 5, (1, 2)), (240, 28, 3, (0, 1))]


def median_ms(fn, repeats: int = 12) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[4:])


def forms(batch: int, channels: int, side: int, kernel: int, pad: tuple[int, int]) -> dict[str, float]:
    weight = torch.randn(channels, 1, kernel, kernel)
    wider = F.pad(weight, (1, 0, 1, 0))  # one zero tap on the less padded side
    x32 = torch.randn(batch, channels, side, side).contiguous(memory_format=torch.channels_last)
    x16 = x32.bfloat16().contiguous(memory_format=torch.channels_last)
    pads = (pad[0], pad[1], pad[0], pad[1])

    def run(x, w, padded: bool, cast: bool = False):
        x = x.detach().requires_grad_()
        inner = x.float() if cast else x
        y = F.conv2d(F.pad(inner, pads), w, stride=2, groups=channels) if padded else \
            F.conv2d(inner, w, stride=2, padding=pad[1], groups=channels)
        y.float().sum().backward()

    return {
        "fp32 pad + conv": median_ms(lambda: run(x32, weight, True)),
        "fp32 wider kernel": median_ms(lambda: run(x32, wider, False)),
        "bf16 pad + conv": median_ms(lambda: run(x16, weight.bfloat16(), True)),
        "bf16 wider kernel": median_ms(lambda: run(x16, wider.bfloat16(), False)),
        "bf16 in, fp32 conv (render copy)": median_ms(lambda: run(x16, wider, False, cast=True)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)
    keep_freed_memory()
    rows = {shape: forms(args.batch, *shape) for shape in SHAPES}
    names = list(next(iter(rows.values())))
    print(f"batch {args.batch}, ms for forward + input backward, torch {torch.__version__}")
    print("| conv (channels, input, kernel) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for (channels, side, kernel, _), times in rows.items():
        print(f"| {channels} ch, {side} px, {kernel}x{kernel} | " + " | ".join(f"{times[n]:.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
