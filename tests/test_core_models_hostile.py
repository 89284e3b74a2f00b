"""Hostile model factories (issue 19, 2.7/2.8; issue 20): generated `package.module:factory` entry points with
any shapes, class counts, channel counts, normalisations, class names and outputs that are not classifiers.
Every one gives success or one readable line from `featvis layers` and `featvis render`: no traceback."""

from __future__ import annotations

import json
from collections import Counter
import sys
import tempfile
import types

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from featvis_core import Classifier
from featvis_pipeline.cli import main

MODULE = "fv_hostile_factories"
COUNTS = {"examples": 0, "succeeded": 0, "one_line_errors": 0}
MESSAGES: Counter = Counter()


class Net(nn.Module):
    """A small CNN whose input channels, class count, output form and accepted size are all drawn."""

    def __init__(self, channels: int, classes: int, output: str, fixed: int | None) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4 * fixed * fixed if fixed else 4, classes)
        self.output, self.fixed = output, fixed

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        pooled = features.flatten(1) if self.fixed else features.mean(dim=(2, 3))
        logits = self.head(pooled)
        return {
            "logits": lambda: logits,
            "feature map": lambda: features,
            "tokens": lambda: logits[:, None, :],
            "tuple": lambda: (logits, features),
            "none": lambda: None,
            "flat": lambda: logits.flatten(),
            "first row": lambda: logits[:1],
            "ints": lambda: logits.long(),
            "exit": lambda: sys.exit(3),
            "raise": lambda: (_ for _ in ()).throw(RuntimeError("boom\nsecond line")),
        }[self.output]()


numbers = st.one_of(st.floats(-2, 2), st.just(float("nan")), st.just(0.0), st.just(float("inf")))
names = st.one_of(st.text(max_size=6), st.integers(-3, 3), st.none(), st.floats(0, 1), st.booleans())
nets = st.builds(Net, st.sampled_from([1, 2, 3, 4]), st.sampled_from([0, 1, 2, 3, 5, 10, 1000]),
                 st.sampled_from(["logits"] * 12 + ["feature map", "tokens", "tuple", "none", "flat", "first row",
                                                   "ints", "exit", "raise"]),
                 st.sampled_from([None, None, 8, 16, 224]))


@st.composite
def factories(draw):
    """What a factory returns: a bare module, a Classifier with drawn fields, or something else."""
    form = draw(st.sampled_from(["module", "module", "classifier", "classifier", "classifier", "other"]))
    if form == "other":
        return draw(st.sampled_from([None, 3, "model", [nn.Linear(2, 2)], nn.Identity(), nn.Flatten()]))
    net = draw(nets)
    if form == "module":
        return net
    classes, channels = net.head.out_features, net.body[0].in_channels
    valid = lambda good, bad: st.one_of(*[good] * 3, bad)  # noqa: E731 - mostly valid, so rendering is reached
    fields = {
        "mean": draw(valid(st.just([0.5] * channels), st.one_of(st.lists(numbers, max_size=5), st.floats(0, 1),
                                                                st.text(max_size=3)))),
        "std": draw(valid(st.just([0.25] * channels), st.lists(numbers, max_size=5))),
        "input_size": draw(valid(st.sampled_from([net.fixed or 32, net.fixed or 64]),
                                 st.one_of(st.integers(-2, 5000), st.booleans()))),
        "classes": draw(valid(st.lists(st.one_of(st.text(max_size=6), st.integers(0, 9)), min_size=classes,
                                       max_size=classes), st.lists(names, max_size=4))),
        "channels": draw(valid(st.just(channels), st.sampled_from([0, 1, 3, 4]))),
    }
    return lambda: Classifier("hostile", net, **fields)


def _register(made) -> None:
    module = types.ModuleType(MODULE)
    module.make = made if callable(made) and not isinstance(made, nn.Module) else (lambda: made)
    sys.modules[MODULE] = module


def _one_line_or_success(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    if code == 0:
        COUNTS["succeeded"] += 1
        return
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "img-step" not in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("featvis: error: "), (code, err)
    COUNTS["one_line_errors"] += 1
    MESSAGES[lines[0][16:90]] += 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(made=factories(), unit=st.sampled_from(["logits:0", "logits:all", "body.0:1", "body:0@", "body.0:0@cls"]))
def test_hostile_model_factories_give_one_line_or_success(made, unit, capsys):
    _register(made)
    COUNTS["examples"] += 1
    _one_line_or_success(main(["layers", f"{MODULE}:make"]), capsys.readouterr().err)
    with tempfile.TemporaryDirectory() as out:
        code = main(["render", f"{MODULE}:make", unit, "--steps", "2", "--size", "32", "--set", "frames=1",
                     "--set", "precision=fp32", "--out", out])
    _one_line_or_success(code, capsys.readouterr().err)


def test_hostile_counts_are_reported(tmp_path_factory):
    """Runs after the generated test: says how many factories it tried (for the closing note)."""
    if not COUNTS["examples"]:
        pytest.skip("the generated test did not run in this session")
    (tmp_path_factory.getbasetemp() / "hostile-model-factories.json").write_text(json.dumps(COUNTS))
    print(f"hostile model factories: {COUNTS}")
    print("\n".join(f"{n:4d} {m}" for m, n in MESSAGES.most_common()))
    assert COUNTS["succeeded"] and COUNTS["one_line_errors"]
