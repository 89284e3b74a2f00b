"""Generated hostile input for the command line, in process (issue 19: generated inputs per family).

Three families, drawn by hypothesis rather than listed one by one:

* **flows.yaml**: random YAML documents (scalars of every type in every field of a job, in `overrides:`,
  `runner:`, `examples:`, `zoom:`, `defaults:`; nesting; anchors and aliases, some of them bombs; keys given
  twice; YAML tags), read by `featvis verify`, `featvis status` and `featvis run --dry-run`;
* **command lines**: every pipeline command with options and values drawn from a hostile pool (huge and
  negative numbers, control characters, bidi overrides, FIFOs, /dev/zero, paths that climb out), and `--set`
  values that are random YAML (aliases, bombs, duplicate keys, 5,000-digit numbers);
* **`--set` values** alone, one to three per render command line.

Each input must end with status 0, 1 or 2 (2: exactly one `featvis: error:` line on stderr), never a traceback
or an uncaught exception, within a time bound; every printed line must be free of control characters; nothing
may be created outside the sandbox. Whatever would start real work (a render, a flow, a Prefect server, a
model's weights, explain's saliency, deployments) is replaced by a stub that ends the input as "accepted".
Counts per family go to <pytest basetemp>/faults-generated-counts.json (printed with pytest -s).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, TINY_JOB

COUNTS: Counter = Counter()
TIMES: Counter = Counter()
EXAMPLES = int(os.environ.get("FEATVIS_FAULT_EXAMPLES", "40"))
PROPERTY = settings(deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])
SECONDS = 20.0  # per input, on a loaded 2-core machine


@pytest.fixture(scope="module", autouse=True)
def report_counts(tmp_path_factory):
    yield
    report = {"families": {k: v for k, v in COUNTS.items() if not k.startswith("(")},
              "outcomes": {k: v for k, v in COUNTS.items() if k.startswith("(")}}
    report["total"] = sum(report["families"].values())
    (tmp_path_factory.getbasetemp() / "faults-generated-counts.json").write_text(json.dumps(report, indent=1))
    print("seconds per command: " + ", ".join(f"{k} {v:.1f}" for k, v in TIMES.most_common()))
    print(f"\ngenerated command-line inputs: {report['total']} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(COUNTS.items()))})")


class Reached(Exception):
    """An input got past every check to the real work: accepted (the stub stops it there)."""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, lite0):
    """A folder the commands run in (cwd), a good flows.yaml, a FIFO, and stubs for all real work."""
    import featvis_core
    import featvis_core.explain as core_explain
    import featvis_pipeline.commands as commands
    import featvis_pipeline.deploy as deploy
    import featvis_pipeline.flows as flows
    import featvis_pipeline.server as server

    folder = tmp_path_factory.mktemp("generated")
    (folder / "images").mkdir()
    os.mkfifo(folder / "fifo")
    (folder / "afile").write_text("x")
    (folder / "good.yaml").write_text(TINY_JOB.format(store=folder / "store", batch=4, extra=""))

    def reached(*args, **kwargs):
        raise Reached()

    def model(name, *args, **kwargs):
        if name == "efficientnet_lite0":
            return lite0
        raise Reached()  # another real model: its weights would be loaded (or downloaded)

    saved = []
    for module, name, stub in [(commands, "_render_batches", reached), (commands, "_run_flow", reached),
                               (flows, "run_job", reached), (flows, "atlas", reached), (server, "prefect_api", reached),
                               (deploy, "serve_jobs", reached), (core_explain, "explain", reached),
                               (featvis_core, "load_model", model), (flows, "load_model", model)]:
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, stub)
    cwd = os.getcwd()
    os.chdir(folder)
    yield folder
    os.chdir(cwd)
    for module, name, value in saved:
        setattr(module, name, value)


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run(argv: list[str]) -> tuple[int | None, str, str]:
    from featvis_pipeline.cli import main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except Reached:
            code = None
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str], sandbox: Path, allowed: set[str]) -> int | None:
    before, repository = tree(sandbox), sorted(os.listdir(ROOT))
    began = time.monotonic()
    code, out, err = run(argv)
    elapsed = time.monotonic() - began
    assert elapsed < SECONDS, (argv, elapsed)
    assert "Traceback" not in err + out, (argv, err[-2000:])
    for line in (out + err).splitlines():
        assert all(ch.isprintable() for ch in line), (argv, line[:300])
    if code is not None:
        assert code in (0, 1, 2), (argv, code, err[-1000:])
        if code == 2:
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("featvis") and ": error: " in lines[0], (argv, err[-2000:])
            assert len(lines[0]) <= 2100, (argv, len(lines[0]))
    created = {p for p in tree(sandbox) - before if not any(p == a or p.startswith(a + "/") for a in allowed)}
    assert not created, (argv, created)
    assert sorted(os.listdir(ROOT)) == repository, (argv, "wrote into the repository")
    COUNTS[f"(outcome) {'accepted' if code is None else code}"] += 1
    TIMES[_command(argv)] += elapsed
    return code


def _command(argv: list[str]) -> str:
    known = ("render", "layers", "run", "status", "examples", "verify", "explain", "deploy")
    return argv[0] if argv and argv[0] in known else "(other)"


# -- family 1: flows.yaml documents -------------------------------------------------------------------------

HOSTILE_TEXT = ["\x1b[31mred", "\x1b]0;title\x07", "\r\rover", "\u202eevil", "\x9b31m", "../../etc", "/etc", "",
                " ", "a" * 3000, "\x00", "\ufeff", "-rf", "$(id)", "{{7*7}}", "<script>alert(1)</script>"]


def scalars() -> st.SearchStrategy:
    return st.one_of(
        st.none(), st.booleans(), st.integers(), st.integers(-2**80, 2**80), st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20), st.sampled_from(HOSTILE_TEXT),
        st.sampled_from(["all", "0-7", "7-0", "hen", "!3", "3@", "blocks.4", "logits", "fast", "threads", "dask", "ray",
                         "0 3 * * 6", "61 * * * *", "efficientnet_lite0", "skimage", "store"]),
    )


def values() -> st.SearchStrategy:
    return st.recursive(scalars(), lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)


JOB_FIELDS = ["model", "layers", "logits", "preset", "overrides", "diversity", "batch", "runner", "cron", "store",
              "scores", "retries", "site", "examples", "zoom", "description", "unknown"]
NESTED = {"overrides": ["steps", "size", "lr", "augment", "schedule", "param", "seed", "crop_scale", "precision"],
          "runner": ["kind", "workers", "address", "cuda"],
          "examples": ["folder", "crops", "shard", "top", "batch", "explain_layer", "min_scale"],
          "zoom": ["logits", "size", "steps", "factor"]}


def base_job(sandbox: Path) -> dict:
    return {"model": "efficientnet_lite0", "layers": {"blocks.4": "0-2"}, "logits": ["hen", 12], "retries": 0,
            "overrides": {"size": 48, "steps": 8}, "scores": False, "store": str(sandbox / "store")}


def documents(sandbox: Path) -> st.SearchStrategy:
    """(YAML text, what it is): one field, one nested field, the whole document, defaults, or text-level
    attacks (aliases, bombs, duplicate keys, tags) on a good document."""

    def field(name, value):
        job = base_job(sandbox)
        job[name] = value
        return yaml.safe_dump({"jobs": {"tiny": job}}, allow_unicode=True), f"field {name}"

    def nested(parent, name, value):
        job = base_job(sandbox)
        job[parent] = {**(job.get(parent) or {}), name: value} if parent == "overrides" else {name: value}
        if parent == "examples":
            job[parent].setdefault("folder", str(sandbox / "images"))
        return yaml.safe_dump({"jobs": {"tiny": job}}, allow_unicode=True), f"nested {parent}"

    def defaults(value):
        return yaml.safe_dump({"defaults": value, "jobs": {"tiny": base_job(sandbox)}}), "defaults"

    def anchored(place, width, depth, where):
        # anchors first (YAML needs them before their aliases): `depth` levels of `width` aliases each,
        # then the deepest used as one field of a good job; width**depth values once expanded
        chain = ", ".join([f"&a0 [{', '.join(['1'] * width)}]"] + [
            f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, depth)])
        job = {k: v for k, v in base_job(sandbox).items() if k != place}
        body = yaml.safe_dump({"jobs": {"tiny": job}}, default_flow_style=True, width=10**6).strip()
        use = f"{place}: *a{depth - 1}, "
        text = body.replace("{tiny: {", "{tiny: {" + use, 1)
        head = f"x: [{chain}]\n" if where == "top" else f"defaults: {{x: [{chain}]}}\n"
        return head + text + "\n", f"aliases at {place}"

    def duplicated(key, value):
        text = yaml.safe_dump({"jobs": {"tiny": base_job(sandbox)}}, default_flow_style=False)
        line = yaml.safe_dump({key: value}, default_flow_style=True, width=10**6).strip().strip("{}")
        return text + f"    {line}\n", "duplicate key"

    def tagged(tag):
        return f"jobs:\n  tiny: {tag}\n", "tag"

    return st.one_of(
        st.builds(field, st.sampled_from(JOB_FIELDS), values()),
        st.sampled_from(sorted(NESTED)).flatmap(lambda p: st.builds(nested, st.just(p), st.sampled_from(NESTED[p]),
                                                                    values())),
        values().map(lambda v: (yaml.safe_dump(v, allow_unicode=True), "whole document")),
        values().map(defaults),
        st.builds(anchored, st.sampled_from(["logits", "layers", "overrides", "description", "store", "runner"]),
                  st.integers(1, 12), st.integers(1, 9), st.sampled_from(["top", "defaults"])),
        st.builds(duplicated, st.sampled_from(JOB_FIELDS[:-1]), scalars()),
        st.sampled_from(["!!python/object/apply:os.system ['id']", "!!binary aGVsbG8=", "!!set {a, b}",
                         "!!omap [{a: 1}, {a: 2}]", "!!timestamp 2001-12-14", "!!float nan", "!!int 1e3", "!<x> 1",
                         "!!python/name:os.system", "&a [*a]"]).map(tagged),
    )


def test_generated_flows_files_never_crash_hang_or_write(sandbox):
    flows = sandbox / "generated.yaml"
    commands = [["verify"], ["status", "tiny"], ["run", "tiny", "--dry-run"]]

    @settings(PROPERTY, max_examples=EXAMPLES * 5)
    @given(documents(sandbox), st.sampled_from(commands))
    def property_(document, command):
        text, what = document
        flows.write_text(text, encoding="utf-8", errors="surrogatepass")
        check([*command, "--flows", str(flows)], sandbox, allowed=set())
        COUNTS["flows.yaml document"] += 1
        COUNTS[f"(flows.yaml) {what.split(' ')[0]}"] += 1

    property_()


# -- family 2: command lines and --set values ------------------------------------------------------------------

NUMBERS = ["0", "-1", "1", "4097", "99999999999999999999", "1e3", "nan", "inf", "-0", "0x10", "", " 3", "٣"]


def set_values() -> st.SearchStrategy:
    laughs = "{" + ", ".join(f"k{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "1"] * 10) + "]" for i in range(8)) + "}"
    yaml_text = values().map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("..."))
    fields = st.sampled_from(["steps", "size", "lr", "augment", "augment.pad", "augment.scale", "schedule", "param",
                              "seed", "frames", "crop_scale", "a.b.c", "", ".", "steps.x", "\x1b[31m"])
    return st.builds(lambda f, v: f"{f}={v}", fields, st.one_of(
        yaml_text, st.sampled_from([laughs, "&a [*a]", "{pad: 1, pad: 2}", "9" * 5000, "[" * 2000 + "]" * 2000,
                                    "!!python/object/apply:os.system ['id']", "*undefined", "'\x1b[2J'", "1e99999",
                                    "-.inf", ".nan", "0o777", "~", "{", "]"])))


def argvs(sandbox: Path) -> st.SearchStrategy:
    paths = st.sampled_from([str(sandbox / "fifo"), "/dev/zero", "/dev/null", str(sandbox / "afile"), str(sandbox),
                             str(sandbox / "nothing"), "/proc/self/status", "../../../../etc/passwd", "-", "--",
                             str(sandbox / "good.yaml"), "\x1b[31m.yaml", "\u202ecod.yaml", ""])
    outs = st.sampled_from([str(sandbox / "out"), "out", "./out/../out", str(sandbox / "afile")])
    text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=12))
    model = st.one_of(st.sampled_from(["efficientnet_lite0", "resnet18", "timm:nope", "os:system", "x:y", "..", ""]), text)
    unit = st.one_of(st.sampled_from(["blocks.4:0", "blocks.4:0-999", "logits:hen", "logits:all", ":", "blocks.4:\x1b"]),
                     st.builds(lambda layer, c: f"{layer}:{c}", text, text))
    job = st.one_of(st.just("tiny"), text)
    number = st.one_of(st.sampled_from(NUMBERS), st.integers().map(str))
    option = lambda name, values_: st.tuples(st.just(name), values_).map(list)  # noqa: E731
    render = st.builds(lambda m, u, opts: ["render", m, *u, "--out", str(sandbox / "out"), *sum(opts, [])], model,
                       st.lists(unit, min_size=1, max_size=3),
                       st.lists(st.one_of(option("--set", set_values()), option("--steps", number), option("--size", number),
                                          option("--batch", number), option("--device", text), option("--preset", text),
                                          option("--out", outs)), max_size=4))
    layers = st.builds(lambda m, opts: ["layers", m, *sum(opts, [])], model,
                       st.lists(st.one_of(option("--size", number), option("--depth", number)), max_size=2))
    jobs = st.builds(lambda c, j, f, extra: [c, j, "--flows", f, *extra], st.sampled_from(["run", "status", "examples"]),
                     job, paths, st.sampled_from([[], ["--dry-run"], ["--site", "/etc"], ["--site", str(sandbox / "site")]]))
    jobs = jobs.map(lambda a: a if a[0] == "run" else [x for x in a if x not in ("--dry-run",)][:4])
    verify = st.builds(lambda j, f, r: ["verify", *j, "--flows", f, *r], st.lists(job, max_size=1), paths,
                       st.sampled_from([[], ["--repair"]]))
    explain = st.builds(lambda p, opts: ["explain", p, "--out", str(sandbox / "out"), *sum(opts, [])], paths,
                        st.lists(st.one_of(option("--model", model), option("--channels", number),
                                           option("--layer", text)), max_size=2))
    deploy = st.builds(lambda f, j: ["deploy", "--flows", f, *sum([["--job", x] for x in j], [])], paths,
                       st.lists(job, max_size=2))
    junk = st.lists(st.one_of(text, st.sampled_from(["--help", "-h", "--flows", "--set", "run", "--", "-x"])), max_size=4)
    return st.one_of(render, layers, jobs, verify, explain, deploy, junk.map(lambda j: ["render", *j]),
                     junk.map(lambda j: j[:1] + ["--flows"] + j[1:]))


def test_generated_command_lines_never_crash_hang_or_write_outside(sandbox):
    """Writes allowed: the good job's store (the run's writability probe makes it), nothing else."""
    allowed = {"store", "out"}

    @settings(PROPERTY, max_examples=EXAMPLES * 6)
    @given(argvs(sandbox))
    def property_(argv):
        if "--help" in argv or "-h" in argv:  # argparse prints its help and exits 0: fine, not interesting
            argv = [a for a in argv if a not in ("--help", "-h")]
        check(argv, sandbox, allowed)
        COUNTS["command line"] += 1
        COUNTS[f"(command) {_command(argv)}"] += 1
        if "--set" in argv:
            COUNTS["(--set in command lines)"] += argv.count("--set")

    property_()
    assert not (sandbox / "out").exists() or not any((sandbox / "out").rglob("*.png"))  # every render was stubbed


def test_generated_set_values_are_checked_like_flows_yaml_in_one_line(sandbox):
    """`featvis render --set FIELD=VALUE`, one to three of them, every value random YAML (or an attack on the
    loader): refused in one line, or accepted into a render (stubbed) with settings the schema allows."""

    @settings(PROPERTY, max_examples=EXAMPLES * 5)
    @given(st.lists(set_values(), min_size=1, max_size=3))
    def property_(values_):
        argv = ["render", "efficientnet_lite0", "blocks.4:0", "--out", str(sandbox / "out"), "--steps", "4"]
        code = check([*argv, *sum((["--set", v] for v in values_), [])], sandbox, allowed=set())
        assert code in (None, 2), code
        COUNTS["--set values"] += 1

    property_()
