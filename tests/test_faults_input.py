"""Bad input, property-based: every malformed flows.yaml, job field or unit selector gives one readable
error line (a FeatvisError; on the command line exit status 2 and one stderr line), never a traceback,
never a render, never a store on disk.

Each property draws a valid tiny job and breaks exactly one thing in it: an unknown model, layer or
class, a channel beyond the layer's count, steps <= 0, an image size below the model's minimum, a cron
that does not parse, a store path that is a file (or inside one), a setting of the wrong type, an unknown
field, a bad job name, YAML that is not a mapping, bytes that are not YAML at all. How many inputs each
property generated is printed at the end of the module (pytest -s) and written to
<pytest basetemp>/faults-input-counts.json.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import FEATVIS, ROOT
from featvis_core import FeatvisError
from featvis_core.models import EMBEDDED, torchvision_names

COUNTS: Counter = Counter()
EXAMPLES = int(os.environ.get("FEATVIS_FAULT_EXAMPLES", "40"))  # per property and category
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# -- the sandbox: one folder for the whole module, a store path that must never appear ----------------


@pytest.fixture(scope="module", autouse=True)
def report_counts(tmp_path_factory):
    yield
    report = {"properties": dict(COUNTS), "total": sum(COUNTS.values())}
    (tmp_path_factory.getbasetemp() / "faults-input-counts.json").write_text(json.dumps(report, indent=1))
    print(f"\nbad inputs generated: {report['total']} ({', '.join(f'{k} {v}' for k, v in sorted(COUNTS.items()))}); "
          "every one a one-line FeatvisError")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "afile").write_text("not a folder\n")
    return folder


@pytest.fixture(scope="module")
def no_render():
    """Anything that would render (or start a flow) fails the test at once."""
    import featvis_pipeline.flows as flows
    import featvis_pipeline.tiles as tiles

    saved = flows.atlas, tiles.render

    def forbidden(*args, **kwargs):
        raise AssertionError("a malformed input reached the renderer")

    flows.atlas, tiles.render = forbidden, forbidden
    yield
    flows.atlas, tiles.render = saved


@pytest.fixture(scope="module")
def lite0_layers(lite0):
    return {layer.name: layer.channels for layer in lite0.layers()}


def base_job(store: Path) -> dict:
    return {"model": "efficientnet_lite0", "layers": {"blocks.4": "0-2"}, "logits": ["hen", 12],
            "overrides": {"size": 48, "steps": 8}, "retries": 0, "scores": False, "store": str(store)}


def flows_text(job: dict, name: str = "tiny", defaults: dict | None = None) -> str:
    data = {"jobs": {name: job}}
    if defaults is not None:
        data["defaults"] = defaults
    return yaml.safe_dump(data, allow_unicode=True)


# -- strategies: one broken thing each -------------------------------------------------------------

KNOWN_MODELS = set(EMBEDDED) | set(torchvision_names())
texts = st.text(min_size=1, max_size=24)
names = texts.filter(lambda t: t.strip() == t and t != "")


def unknown_models():
    plain = texts.filter(lambda t: t not in KNOWN_MODELS and ":" not in t)
    # entry-point shaped but not importable names stay out: they would import whatever module they name
    badly_shaped = st.builds(lambda a, b: f"{a}:{b}", texts, texts).filter(
        lambda t: not t.startswith("timm:") and not all(p.isidentifier() for p in t.replace(":", ".").split(".")))
    return st.one_of(plain, badly_shaped, st.sampled_from(["resnet5O", "efficientnet_lite9", "", " ", "RESNET50"]))


def unknown_layers(real):
    return texts.filter(lambda t: t.strip() not in real and not any(c in t for c in "*?[")).map(str.strip).filter(bool)


def channels_beyond(layers):
    def beyond(name, count, how):
        return {"int": count + how, "range": f"0-{count + how}", "list": [0, count + how], "neg": -1 - how,
                "negchan": f"!{count + how}", "neuron": f"{count + how}@"}

    return st.builds(lambda name, how, kind: (name, beyond(name, layers[name], how)[kind]),
                     st.sampled_from(sorted(layers)), st.integers(0, 10**9),
                     st.sampled_from(["int", "range", "list", "neg", "negchan", "neuron"]))


def unknown_classes(classes):
    lowered = {c.lower() for c in classes}
    return texts.filter(lambda t: t.strip().lower() not in lowered and not t.strip().isdecimal() and t.strip() != "all"
                        and ":" not in t and "," not in t and t.strip() != "" and not re.fullmatch(r"\s*\d+-\d+\s*", t))


def bad_crons():
    from datetime import datetime

    from cronsim import CronSim

    def invalid(text):
        try:
            CronSim(text, datetime(2026, 1, 1))
        except Exception:  # noqa: BLE001 - the oracle: anything cronsim refuses
            return True
        return False

    structured = st.lists(st.one_of(st.sampled_from(["*", "*/0", "61", "-1", "24", "32", "13", "8", "1-", "a", "?", "L",
                                                     "0", "5", "*/5", "1,2", ""]), texts), min_size=1, max_size=8
                          ).map(" ".join)
    return st.one_of(structured, texts).filter(invalid)


def wrong_typed_overrides():
    """A render setting given a value of the wrong type or a non-finite number."""
    ints = ["size", "steps", "frames", "seed", "blur_every", "animation_size", "early_stop"]
    floats = ["lr", "decay", "l1", "l2", "tv", "blur_sigma", "input_blur", "diversity_weight"]
    bools = ["best", "decorrelate"]
    strings = ["param", "optimizer", "precision"]
    not_int = st.one_of(st.text(max_size=8), st.floats(allow_nan=True), st.booleans(), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)).filter(
        lambda v: not (isinstance(v, float) and v.is_integer()))
    not_float = st.one_of(st.text(max_size=8), st.booleans(), st.sampled_from([math.nan, math.inf, -math.inf]),
                          st.lists(st.floats(), max_size=2))
    not_bool = st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.none())
    not_str = st.one_of(st.integers(), st.floats(), st.booleans(), st.lists(st.text(max_size=3), max_size=2))
    return st.one_of(
        st.tuples(st.sampled_from(ints), not_int),
        st.tuples(st.sampled_from(floats), not_float),
        st.tuples(st.sampled_from(bools), not_bool),
        st.tuples(st.sampled_from(strings), not_str),
        st.tuples(st.just("augment"), st.one_of(st.integers(), st.text(max_size=5),
                                                st.fixed_dictionaries({"pad": not_int}),
                                                st.fixed_dictionaries({"scale": st.one_of(
                                                    st.text(max_size=4), st.lists(st.floats(), min_size=3, max_size=4),
                                                    st.just([1.0]), st.just([1.0, math.nan]))}),
                                                st.dictionaries(names.filter(lambda k: k not in _AUGMENT_FIELDS),
                                                                st.integers(), min_size=1, max_size=2))),
        st.tuples(st.just("schedule"), st.one_of(st.integers(), names.filter(lambda n: n not in ("constant", "seed-003", "graetz")),
                                                 st.fixed_dictionaries({"start": not_int, "every": st.integers(1, 5)}),
                                                 st.dictionaries(names, st.integers(), min_size=1, max_size=2))),
    ).filter(lambda pair: not (pair[0] == "schedule" and isinstance(pair[1], dict) and set(pair[1]) <= {"start", "every", "factor", "stages", "until", "blur"} and {"start", "every"} <= set(pair[1]) and isinstance(pair[1]["start"], int)))


CATEGORIES = [
    "unknown model", "unknown layer", "layer glob matching nothing", "channel beyond the layer", "unknown class",
    "steps <= 0", "size below the minimum", "cron that does not parse", "store path that is a file",
    "setting of the wrong type", "unknown setting", "unknown job field", "number out of range", "runner garbage",
    "no units", "bad job name", "field of the wrong shape", "unknown top-level field", "channels with a colon",
]


def breakages(layers, classes, module_paths, sandbox) -> dict:
    """category -> strategy of flows.yaml texts with exactly one thing broken."""
    store = sandbox / "store"

    def job(**changes):
        data = base_job(store)
        for key, value in changes.items():
            if value is _DROP:
                data.pop(key, None)
            else:
                data[key] = value
        return flows_text(data)

    def overrides(**values):
        return {"size": 48, "steps": 8, **values}

    shapes = {"model": [1], "layers": 3, "logits": {"a": 1}, "overrides": [1, 2], "store": [1], "cron": 5,
              "scores": "maybe", "preset": ["fast"], "diversity": 1.5}
    found = {
        "unknown model": unknown_models().map(lambda m: job(model=m)),
        "unknown layer": unknown_layers(module_paths).map(lambda name: job(layers={name: "0-1"})),
        "layer glob matching nothing": st.sampled_from(["layer*", "blocks.9?", "blocks.*.*.*.*", "conv_head.*",
                                                        "[xyz]*"]).map(lambda glob: job(layers={glob: "all"})),
        "channel beyond the layer": channels_beyond(layers).map(lambda lc: job(layers={lc[0]: lc[1]})),
        "unknown class": st.one_of(st.sampled_from(["\u00b2", "hne", "scuba-diver", "1-2000", "0-", "!8"]),
                                   unknown_classes(classes), st.integers(1000, 10**12), st.integers(max_value=-1)).map(
            lambda c: job(logits=["hen", c])),
        "steps <= 0": st.integers(max_value=0).map(lambda n: job(overrides=overrides(steps=n))),
        "size below the minimum": st.integers(-10**6, 31).map(lambda n: job(overrides=overrides(size=n))),
        "cron that does not parse": bad_crons().map(lambda c: job(cron=c)),
        "store path that is a file": st.sampled_from(["afile", "afile/store", "afile/a/b"]).map(
            lambda p: job(store=str(sandbox / p))),
        "setting of the wrong type": wrong_typed_overrides().map(lambda kv: job(overrides=overrides(**{kv[0]: kv[1]}))),
        "unknown setting": st.dictionaries(names.filter(lambda k: k not in _RENDER_FIELDS), st.integers(), min_size=1,
                                           max_size=2).map(lambda o: job(overrides=overrides(**o))),
        "unknown job field": st.tuples(names.filter(lambda k: k not in _JOB_FIELDS), st.integers()).map(
            lambda kv: job(**{kv[0]: kv[1]})),
        "number out of range": st.sampled_from(["diversity", "batch", "retries"]).flatmap(
            lambda f: st.one_of(st.integers(max_value=-1 if f == "retries" else 0), st.integers(min_value=5000),
                                st.text(max_size=4).filter(lambda t: not any(c.isdigit() for c in t))).map(
                lambda v, f=f: job(**{f: v}))),
        "runner garbage": st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                                    st.fixed_dictionaries({"kind": st.text(max_size=6).filter(
                                        lambda k: k not in ("threads", "dask", "ray"))}),
                                    st.fixed_dictionaries({"workers": st.integers(max_value=0)})).map(
            lambda r: job(runner=r)),
        "no units": st.sampled_from([{}, []]).map(lambda v: job(layers=v, logits=_DROP)),
        "bad job name": st.one_of(st.sampled_from(["", "../escape", "a/b", ".hidden", "-x", "a b", "tab\there",
                                                   "nl\nname"]),
                                  texts.filter(lambda t: not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", t))).map(
            lambda n: flows_text(base_job(store), name=n)),
        "field of the wrong shape": st.sampled_from(sorted(shapes)).map(lambda f: job(**{f: shapes[f]})),
        "unknown top-level field": st.dictionaries(names, st.integers(), min_size=1, max_size=2).filter(
            lambda d: "jobs" not in d and "defaults" not in d).map(
            lambda extra: yaml.safe_dump({"jobs": {"tiny": base_job(store)}, **extra})),
        # "0:1" would move the selector's layer/channel split: blocks.4 + "0:1" -> layer "blocks.4:0", channel 1
        "channels with a colon": st.one_of(
            st.builds(lambda name, a, b: job(layers={name: f"{a}:{b}"}), st.sampled_from(sorted(layers)),
                      st.integers(0, 3), st.integers(0, 3)),
            st.builds(lambda a, b: job(logits=[f"{a}:{b}"]), st.sampled_from(["hen", "12", "all", "1-3"]),
                      st.integers(0, 30))),
    }
    assert list(found) == CATEGORIES
    return found


_DROP = object()
_RENDER_FIELDS = {"param", "decorrelate", "decay", "schedule", "size", "steps", "optimizer", "lr", "augment", "l1",
                  "l1_centre", "l2", "tv", "blur_every", "blur_sigma", "input_blur", "best", "diversity",
                  "diversity_weight", "frames", "animation_size", "early_stop", "precision", "seed", "crop", "crop_share"}
_AUGMENT_FIELDS = {"pad", "jitter", "scale", "rotate", "jitter_after", "brightness", "contrast", "saturation", "hue",
                   "fill", "output", "copies", "zoom", "crop"}
_JOB_FIELDS = {"model", "layers", "logits", "preset", "overrides", "diversity", "batch", "runner", "cron", "store",
               "scores", "retries", "site", "description"}


def not_mappings():
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
    return st.one_of(
        values.filter(lambda v: not isinstance(v, dict)).map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
        st.sampled_from(["", "---\n", "# only a comment\n", "- jobs\n", "jobs\n", "[jobs, defaults]\n", "~\n"]),
    )


def garbage():
    return st.one_of(
        st.binary(max_size=200).map(lambda b: b),
        st.text(max_size=200).map(lambda t: t.encode("utf-8")),
        st.sampled_from([b"jobs: [\n", b"jobs: {tiny: {model: efficientnet_lite0\n", b"\xff\xfe\x00j\x00o\x00b",
                         b"jobs:\n\t- tab\n", b"{{{{", b"jobs: !!python/object:os.system {}\n",
                         b"jobs: &a [*a]\n", b"%YAML 9.9\n---\njobs: {}\n"]),
    )


# -- the checks ------------------------------------------------------------------------------------


def assert_one_line(message: str) -> None:
    assert message.strip(), "an empty error message"
    assert len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message, repr(message)
    assert "Traceback" not in message and len(message) < 600, message


def plan_or_error(path: Path) -> FeatvisError:
    """Load and plan the job as `featvis run` does; return the error it must raise."""
    from featvis_pipeline.flows import plan_job
    from featvis_pipeline.jobs import load_job

    try:
        plan_job("tiny", load_job(path, "tiny"))
    except FeatvisError as error:
        return error
    raise AssertionError(f"accepted a malformed flows.yaml:\n{path.read_text(errors='replace')}")


def write(sandbox: Path, data: str | bytes) -> Path:
    path = sandbox / "flows.yaml"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# -- properties ------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_broken_job_is_one_line_before_any_work(category, sandbox, lite0, lite0_layers, no_render):
    strategy = breakages(lite0_layers, lite0.classes, set(lite0.module_paths), sandbox)[category]

    @PROPERTY
    @given(strategy)
    def check(text):
        COUNTS[f"broken job: {category}"] += 1
        error = plan_or_error(write(sandbox, text))
        assert_one_line(str(error))
        assert not (sandbox / "store").exists()

    check()


def test_not_a_mapping_or_not_yaml_is_one_line(sandbox, no_render):
    @settings(PROPERTY, max_examples=EXAMPLES * 5)
    @given(st.one_of(not_mappings().map(str.encode), garbage()))
    def check(data):
        COUNTS["not a mapping / not YAML"] += 1
        error = plan_or_error(write(sandbox, data))
        assert_one_line(str(error))
        assert str(error).startswith(str(sandbox / "flows.yaml"))

    check()


def test_command_line_gives_exit_2_and_one_line(sandbox, lite0, lite0_layers, no_render):
    """featvis_pipeline.cli.main(argv), in process: status 2, one stderr line, nothing on disk."""
    from featvis_pipeline.cli import main

    commands = st.sampled_from([["run", "tiny"], ["run", "tiny", "--dry-run"], ["status", "tiny"], ["run", "nosuchjob"]])
    unreadable = st.one_of(garbage(), not_mappings().map(str.encode))
    broken = st.one_of(*breakages(lite0_layers, lite0.classes, set(lite0.module_paths), sandbox).values()).map(str.encode)
    # verify needs no model: a job the planner would refuse is still verifiable, so verify gets unreadable files
    cases = st.one_of(st.tuples(commands, st.one_of(broken, unreadable)), st.tuples(st.just(["verify"]), unreadable))

    @settings(PROPERTY, max_examples=EXAMPLES * 3)
    @given(cases)
    def check(case):
        argv, data = case
        COUNTS["command line"] += 1
        path = write(sandbox, data)
        out, err = StringIO(), StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main([*argv, "--flows", str(path)])
        assert code == 2, (code, out.getvalue(), err.getvalue())
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("featvis: error: "), err.getvalue()
        assert not (sandbox / "store").exists()

    check()


def test_selectors_parse_or_fail_in_one_line(lite0, lite0_layers):
    """featvis_core.units.parse_selector on arbitrary selectors: units of the named layer, in range, that
    round-trip through their spec, or one FeatvisError line."""
    from featvis_core.units import LOGITS, Kind, parse_selector, unit_from_spec

    tokens = st.one_of(st.sampled_from(["all", "dream", "!3", "3@", "3@1/2", "0-7", "7-0", "", " ", "hen", "12",
                                        "99999", "-1", "!all", "@", "1@x/y", "scuba diver", "1,2"]), texts,
                       st.integers(-5, 10**6).map(str))
    layer_names = st.one_of(st.sampled_from(sorted(lite0_layers) + [LOGITS, "", "nope", "blocks.4:0"]), texts)
    selectors = st.one_of(st.builds(lambda layer, ts: f"{layer}:{','.join(ts)}", layer_names, st.lists(tokens, min_size=1, max_size=4)),
                          st.text(max_size=30))

    @settings(PROPERTY, max_examples=EXAMPLES * 5)
    @given(selectors, st.integers(0, 2000))
    def check(selector, channels):
        # a known featvis_core bug, pinned by test_class_lookup_of_a_non_decimal_digit below
        assume(not any(ch.isdigit() and not ch.isdecimal() for ch in selector))
        COUNTS["unit selector"] += 1
        count = len(lite0.classes) if selector.strip().rpartition(":")[0] == LOGITS else channels
        try:
            units = parse_selector(selector, count, lite0.class_index)
        except FeatvisError as error:
            assert_one_line(str(error))
            return
        layer = selector.strip().rpartition(":")[0]
        for unit in units:
            assert unit.layer == layer
            assert unit_from_spec(unit.spec) == unit
            if unit.kind is not Kind.LAYER:
                assert 0 <= unit.index < count, (selector, unit)

    check()


def test_class_lookup_of_a_non_decimal_digit(lite0):
    from featvis_core.units import parse_selector

    with pytest.raises(FeatvisError):
        parse_selector("logits:\u00b2", len(lite0.classes), lite0.class_index)


@pytest.mark.slow
def test_featvis_run_end_to_end_exit_2_without_traceback(tmp_path, lite0_layers):
    """`python -m featvis_pipeline.cli run` on a few broken flows.yaml, as a user runs it (in parallel, to save time)."""
    store = tmp_path / "store"
    cases = {  # the rest are covered in process above (featvis_pipeline.cli.main), and by test_pipeline_flow.py
        "not a mapping": "- jobs\n- tiny\n",
        "cron": flows_text({**base_job(store), "cron": "61 * * * *"}),
        "class": flows_text({**base_job(store), "logits": ["hen", "no such bird"]}),
        "wrong type": flows_text({**base_job(store), "overrides": {"size": 48, "lr": "1e-3"}}),
    }
    running = {}
    for name, text in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.yaml"
        path.write_text(text)
        running[name] = subprocess.Popen([*FEATVIS, "run", "tiny", "--flows", str(path)], cwd=ROOT, text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, process in running.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 2, (name, process.returncode, err[-2000:])
        assert "Traceback" not in err and out == "", (name, err)
        [line] = err.splitlines()
        assert line.startswith("featvis: error: "), (name, line)
        COUNTS["subprocess run"] += 1
    assert not store.exists()
