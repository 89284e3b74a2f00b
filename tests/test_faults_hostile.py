"""Hostile stores and hostile settings, property-based (issue 13, item 7).

A store is a folder people copy and share, so every field of a manifest, a meta.json and a model card may be
of any type and value, paths may climb out (`..`, absolute, empty) and folders or files may be symbolic links
to anything. Hypothesis breaks a real rendered store (the tiny job) in 1-3 such ways at once and runs every
command that reads a store on it, in process: `featvis verify`, `featvis status`, `featvis run --dry-run`,
`featvis site build`, then `featvis verify --repair` and `featvis verify` again. Each must end with status 0, 1
or 2 (2: exactly one line on stderr), never a traceback; nothing outside the store and the command's own
folders may change (a sentinel folder the links point into is checked byte for byte, the store too for the
read-only commands); the built gallery never publishes a file from outside the store; and after `--repair`
the store verifies.

Hostile settings: every command's options, drawn broken (one thing each), must give status 2 and one line,
write nothing and render nothing. How many of each were checked is printed (pytest -s) and written to
<pytest basetemp>/faults-hostile-counts.json.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY_JOB
from hostile import PAYLOADS

pytestmark = pytest.mark.slow

COUNTS: Counter = Counter()
EXAMPLES = int(os.environ.get("FEATVIS_FAULT_EXAMPLES", "40"))
PROPERTY = settings(deadline=None, database=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def report_counts(tmp_path_factory):
    yield
    report = {"checks": dict(COUNTS), "total": sum(v for k, v in COUNTS.items() if not k.startswith("("))}
    # total: hostile stores + hostile command lines + budget refusals; "(...)" entries say what they were made of
    (tmp_path_factory.getbasetemp() / "faults-hostile-counts.json").write_text(json.dumps(report, indent=1))
    print(f"\nhostile inputs checked: {report['total']} ({', '.join(f'{k} {v}' for k, v in sorted(COUNTS.items()))});"
          " 0 tracebacks, 0 writes outside, every repaired store verifies")


@pytest.fixture(scope="module")
def pristine(prefect_server, tmp_path_factory) -> Path:
    """The tiny job (7 units) rendered once by the real flow; every example breaks a copy of it."""
    folder = tmp_path_factory.mktemp("hostile-pristine")
    flows = folder / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=folder / "store", batch=4, extra=""))
    from featvis_pipeline.flows import atlas

    assert atlas(job="tiny", flows=str(flows))["rendered"] == 7
    return folder / "store"


@pytest.fixture(scope="module")
def no_render():
    """Nothing in these tests may render or start a flow."""
    import featvis_core
    import featvis_pipeline.commands as commands
    import featvis_pipeline.flows as flows
    import featvis_pipeline.tiles as tiles

    def forbidden(*args, **kwargs):
        raise AssertionError("a hostile input reached the renderer")

    saved = flows.run_job, flows.atlas, tiles.render, featvis_core.render
    flows.run_job = flows.atlas = tiles.render = featvis_core.render = forbidden
    yield commands
    flows.run_job, flows.atlas, tiles.render, featvis_core.render = saved


# -- hostile values ---------------------------------------------------------------------------------------

OUTSIDE = "__outside__"  # replaced by the sentinel folder's absolute path


def paths() -> st.SearchStrategy:
    return st.sampled_from([
        "", ".", "..", "../..", "../../..", "/", "/etc", OUTSIDE, f"{OUTSIDE}/precious.txt", "a/../../..",
        "efficientnet_lite0", "efficientnet_lite0/blocks.4", "efficientnet_lite0/blocks.4/..",
        "efficientnet_lite0/blocks.4/c0000@000000000000/../../../..", "efficientnet_lite0/../../outside",
        "efficientnet_lite0/blocks.4/c0000@zzzzzzzzzzzz", "efficientnet_lite0/blocks.4/.c0000@000000000000.tmp",
        "efficientnet_lite0/blocks.4/c0000@000000000000/", "efficientnet_lite0\x00/x", "manifests", "locks",
        "efficientnet_lite0/blocks.4/c0000@000000000000/meta.json", "C:\\windows", "~/x", "image.png/../..",
        "diversity/../../x", "../image.png", "/etc/passwd", "sub/dir/deep.webp",
    ])


def scalars() -> st.SearchStrategy:
    return st.one_of(
        st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 3),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.sampled_from(PAYLOADS), paths(),
        st.sampled_from(["done", "pending", "failed", "corrupt", "DONE", "channel", "logit", "0" * 64, "f" * 64]),
    )


def values() -> st.SearchStrategy:
    return st.recursive(scalars(), lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                        max_leaves=6)


GARBAGE = [b"", b"{", b"[]", b"null", b"1", b'"x"', b"NaN", b"[" * 5000 + b"]" * 5000, b"\xff\xfe\x00",
           b'{"schema": 1, "units": ' + b"[" * 3000, b'{"a": 1e999999}', b'{"schema": 1e400}']

MANIFEST_FIELDS = ["schema", "job", "model", "preset", "settings", "updated", "counts", "units"]
UNIT_FIELDS = ["unit", "layer", "kind", "index", "label", "key", "state", "path", "error", PAYLOADS[0]]
META_FIELDS = ["schema", "key", "status", "files", "label", "size", "activation", "scores", "timings", "created",
               "files.image.path", "files.thumb.path", "files.image_web.path", "files.thumb.bytes", "files.mp4.sha256",
               "files.diversity", "activation.history", "files.image", "timings.render_s"]
CARD_FIELDS = ["schema", "model", "layers", "classes", "filters", "mean", "input_size"]
FS = ["unit folder -> outside", "layer folder -> outside", "model folder -> outside", "file -> outside file",
      "meta.json -> FIFO", "meta.json -> folder", "meta.json 100 MB", "manifests -> outside", "locks -> outside",
      "lock file -> outside file", "trash link -> outside", "manifest -> outside file", "model.json -> outside file",
      "unit folder -> other unit", "filters.png -> outside file", "image.webp -> folder"]


def mutations() -> st.SearchStrategy:
    unit_index = st.integers(0, 6)
    kinds = {
        "manifest": st.tuples(st.just("manifest"), st.sampled_from(MANIFEST_FIELDS), values()),
        "manifest unit": st.tuples(st.just("manifest unit"), unit_index, st.sampled_from(UNIT_FIELDS),
                                   st.one_of(paths(), scalars(), values())),
        "meta": st.tuples(st.just("meta"), unit_index, st.sampled_from(META_FIELDS), st.one_of(paths(), values())),
        "card": st.tuples(st.just("card"), st.sampled_from(CARD_FIELDS), values()),
        "filesystem": st.tuples(st.just("filesystem"), st.sampled_from(FS), unit_index),
        "garbage": st.tuples(st.just("garbage"), st.sampled_from(["manifest", "meta", "card"]), unit_index,
                             st.sampled_from(GARBAGE)),
    }
    # the kind first, uniformly: a store breaks in each way about as often
    return st.lists(st.sampled_from(sorted(kinds)).flatmap(kinds.__getitem__), min_size=1, max_size=3)


def _resolve(value, outside: Path):
    if isinstance(value, str):
        return value.replace(OUTSIDE, str(outside))
    if isinstance(value, list):
        return [_resolve(v, outside) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, outside) for k, v in value.items()}
    return value


def _set(data: dict, dotted: str, value) -> None:
    *parents, name = dotted.split(".")
    for part in parents:
        if not isinstance(data.get(part), dict):
            return
        data = data[part]
    data[name] = value


def _edit(path: Path, change) -> None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return
    if isinstance(data, dict):
        change(data)
        path.write_text(json.dumps(data, allow_nan=True))


def apply(store: Path, outside: Path, mutation: tuple) -> None:
    """Break the store one way."""
    kind = mutation[0]
    units = json.loads((PRISTINE_MANIFEST[0]).read_text())["units"]
    manifest = store / "manifests" / "tiny.json"
    model = store / "efficientnet_lite0"
    if kind == "manifest":
        _, field, value = mutation
        _edit(manifest, lambda d: d.__setitem__(field, _resolve(value, outside)))
    elif kind == "manifest unit":
        _, i, field, value = mutation

        def change(d):
            if isinstance(d.get("units"), list) and i < len(d["units"]) and isinstance(d["units"][i], dict):
                d["units"][i][field] = _resolve(value, outside)
        _edit(manifest, change)
    elif kind == "meta":
        _, i, field, value = mutation
        _edit(store / units[i]["path"] / "meta.json", lambda d: _set(d, field, _resolve(value, outside)))
    elif kind == "card":
        _, field, value = mutation
        _edit(model / "model.json", lambda d: d.__setitem__(field, _resolve(value, outside)))
    elif kind == "garbage":
        _, target, i, data = mutation
        path = {"manifest": manifest, "meta": store / units[i]["path"] / "meta.json", "card": model / "model.json"}[target]
        if path.is_file() and not path.is_symlink():
            path.write_bytes(data)
    else:
        _, what, i = mutation
        unit = store / units[i]["path"]
        other = store / units[(i + 1) % len(units)]["path"]

        def replace(path: Path, target: Path | None, folder: bool = False) -> None:
            if not path.exists() and not path.is_symlink():
                return
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            if folder:
                path.mkdir()
            elif target is not None:
                path.symlink_to(target)

        if what == "unit folder -> outside":
            replace(unit, outside)
        elif what == "layer folder -> outside":
            replace(unit.parent, outside)
        elif what == "model folder -> outside":
            replace(model, outside)
        elif what == "file -> outside file":
            replace(unit / "thumb.webp", outside / "precious.txt")
        elif what == "meta.json -> FIFO":
            if (unit / "meta.json").is_file():
                (unit / "meta.json").unlink()
                os.mkfifo(unit / "meta.json")
        elif what == "meta.json -> folder":
            replace(unit / "meta.json", None, folder=True)
        elif what == "meta.json 100 MB":
            if (unit / "meta.json").is_file():
                with open(unit / "meta.json", "r+b") as handle:
                    handle.truncate(100 << 20)
        elif what == "manifests -> outside":
            replace(store / "manifests", outside)
        elif what == "locks -> outside":
            if not (store / "locks").is_symlink():
                (store / "locks").mkdir(exist_ok=True)
            replace(store / "locks", outside)
        elif what == "lock file -> outside file":
            if (store / "locks").is_symlink():
                return
            (store / "locks").mkdir(exist_ok=True)
            lock = store / "locks" / f"{units[i]['key'][:24]}.lock"
            lock.unlink(missing_ok=True)
            lock.symlink_to(outside / "precious.txt")
        elif what == "trash link -> outside":
            if unit.parent.is_dir() and not unit.parent.is_symlink():
                (unit.parent / f".{unit.name}~trash~deadbeef.tmp").unlink(missing_ok=True)
                (unit.parent / f".{unit.name}~trash~deadbeef.tmp").symlink_to(outside)
        elif what == "manifest -> outside file":
            replace(manifest, outside / "precious.txt")
        elif what == "model.json -> outside file":
            replace(model / "model.json", outside / "precious.txt")
        elif what == "unit folder -> other unit":
            replace(unit, other)
        elif what == "filters.png -> outside file":
            replace(model / "filters.png", outside / "precious.txt")
        elif what == "image.webp -> folder":
            replace(unit / "image.webp", None, folder=True)


PRISTINE_MANIFEST: list[Path] = []


# -- the checks -------------------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, str]:
    """Every entry under `root` (links not followed) with its type and content digest."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"link {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "dir"
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.stat().st_size < 1 << 24 else \
                    f"large {path.stat().st_size}"
            else:
                found[rel] = "special"
    return found


def run(argv: list[str]) -> tuple[int, str, str]:
    """The command line in process: an exception escaping main() is a traceback a user would see."""
    from featvis_pipeline.cli import main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def check_exit(argv: list[str], code: int, err: str) -> None:
    assert code in (0, 1, 2), (argv, code, err[-2000:])
    assert "Traceback" not in err, (argv, err[-3000:])
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and ": error: " in lines[0], (argv, err[-2000:])


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, pristine) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    PRISTINE_MANIFEST.append(pristine / "manifests" / "tiny.json")
    return folder


def prepare(pristine: Path, sandbox: Path, changes: list[tuple]) -> tuple[Path, Path, Path, Path]:
    """A fresh copy of the store broken by `changes`, a sentinel folder outside it, and a flows.yaml."""
    work = sandbox / "case"
    if work.exists():
        for path in work.rglob("*"):  # links first: rmtree must never follow one out
            if path.is_symlink():
                path.unlink()
        shutil.rmtree(work)
    outside = work / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "precious.txt").write_text("precious\n")
    (outside / "dir" / "keep.bin").write_bytes(os.urandom(64))
    store = Path(shutil.copytree(pristine, work / "store", symlinks=True))
    flows = work / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=store, batch=4, extra=""))
    for change in changes:
        apply(store, outside, change)
        COUNTS[f"(mutation) {change[0]}"] += 1
    COUNTS["hostile store"] += 1
    return work, store, outside, flows


def check_store(pristine: Path, sandbox: Path, changes: list[tuple]) -> None:
    """Break a copy of the store, run every command that reads it, repair it, and check the invariants."""
    work, store, outside, flows = prepare(pristine, sandbox, changes)
    sentinel, before = tree(outside), tree(store)
    siblings = sorted(p.name for p in work.iterdir())

    for argv in (["verify", "--flows", str(flows)], ["status", "tiny", "--flows", str(flows)],
                 ["run", "tiny", "--dry-run", "--flows", str(flows)],
                 ["site", "build", "--store", str(store), "--out", str(work / "site")]):
        code, out, err = run(argv)
        check_exit(argv, code, err)
        COUNTS[f"(command) {argv[0] if argv[0] != 'site' else 'site build'}"] += 1
        assert tree(outside) == sentinel, f"{argv}: wrote outside the store"
        assert tree(store) == before, f"{argv}: a read-only command changed the store"
    published = work / "site" / "media"
    if published.exists():  # every published file is a regular file of the store, never one a link led to
        ours = {digest for rel, digest in before.items() if len(digest) == 64}
        for path in published.rglob("*"):
            if path.is_file() and path.name != "unit.json":
                assert hashlib.sha256(path.read_bytes()).hexdigest() in ours, f"published {path}"
    assert {p.name for p in work.iterdir()} <= {*siblings, "site", "site-src"}

    code, out, err = run(["verify", "--repair", "--flows", str(flows)])
    check_exit(["verify", "--repair"], code, err)
    assert code == 0, (out, err)
    assert tree(outside) == sentinel, "--repair wrote or removed outside the store"
    code, out, err = run(["verify", "--flows", str(flows)])
    assert code == 0 and "0 corrupt" in out.splitlines()[-1], (changes, out, err)
    COUNTS["(command) verify --repair, then verify: 0 corrupt"] += 1


def test_hostile_stores_never_crash_escape_or_stay_broken(pristine, sandbox, no_render):
    @settings(PROPERTY, max_examples=EXAMPLES * 3)
    @given(mutations())
    def check(changes):
        check_store(pristine, sandbox, changes)

    check()


@pytest.mark.parametrize("attack", FS)
def test_every_filesystem_attack_alone(attack, pristine, sandbox, no_render):
    """Each link, special file and oversized file on its own, on the first and on a logit unit."""
    check_store(pristine, sandbox, [("filesystem", attack, 0), ("filesystem", attack, 6)])


# -- hostile settings for every command ----------------------------------------------------------------------

def bad_set() -> st.SearchStrategy:
    """One --set that must be refused (type, range, name or syntax)."""
    return st.one_of(
        st.sampled_from(["lr=nan", "lr=.nan", "lr=.inf", "lr=-1", "steps=abc", "steps=0", "steps=1e12",
                         "steps=1000000000000", "diversity=two", "diversity=0", "augment=heavy", "size=32.5",
                         "size=1000000", "size=4", "augment.copies=1000000000", "augment.copies=0", "output=1000000",
                         "augment.output=1000000", "frames=1000000000000", "frames=0",
                         "schedule={start: 64, every: 5, factor: 1.0001, until: 400}",
                         "schedule={start: 64, every: 5, factor: 16, stages: 64}", "schedule={start: 8, every: 0}",
                         "schedule=warp", "schedule=[1]", "param=<img src=x onerror=alert(1)>", "optimizer=",
                         "precision=fp8", "seed=-1", "crop=1", "crop_share=2", "input_blur=1e9", "blur_sigma=-1",
                         "augment.scale=[0, 1]", "augment.scale=[1]", "augment.zoom=0", "animation_size=1",
                         "stpes=3", "augment.padd=1", "lr=[", "=3", "novalue", "steps=", "lr=true", "size=null",
                         "augment.pad=-1", "early_stop=-5", "l2=.inf", "decay=1e300", "a.b.c=1",
                         ]),
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["steps", "size", "frames", "diversity"]),
                  st.one_of(st.text(max_size=6).filter(lambda t: not _yaml_int(t)),
                            st.integers(10**7, 10**15).map(str), st.integers(-10**6, 0).map(str))),
    )


def _yaml_int(text: str) -> bool:
    import yaml

    try:
        return isinstance(yaml.safe_load(text), int)
    except yaml.YAMLError:
        return False


def render_argv() -> st.SearchStrategy:
    base = ["render", "efficientnet_lite0", "blocks.4:0-3", "--out", "__OUT__"]
    return st.one_of(
        bad_set().map(lambda s: [*base, "--set", s, "--batch", "16"]),
        st.sampled_from(["0", "-1", "5000", "abc", "1e3", ""]).map(lambda b: [*base, "--batch", b]),
        st.sampled_from(["tpu:7", "cuda", "cuda:0", "cuda:99", "mps", "cpu:3", "", "gpu", "cpu;rm -rf /",
                         "<img src=x>"]).map(lambda d: [*base, "--device", d]),
        st.sampled_from(["0", "-5", "100001", "abc", "3.5"]).map(lambda n: [*base, "--steps", n]),
        st.sampled_from(["0", "4", "100000", "abc"]).map(lambda n: [*base, "--size", n]),
        st.sampled_from(["os:system", "sys:exit", "subprocess:run", "builtins:exit", "shutil:rmtree", "this:x",
                         "antigravity:fly", "json:loads", "torch.nn:Linear", "torch.nn:Identity", "torch:randn",
                         "nosuchpkg:x", "a..b:c", "featvis_core.models:imagenet_classes", "../x", "<script>",
                         "timm:", ":x", "x:"]).map(lambda m: ["render", m, "logits:1", "--out", "__OUT__"]),
        st.sampled_from(["logits:1-99999", "blocks.4:9999", "nolayer:0", "blocks.4:", "logits:<img src=x>",
                         "blocks.4:!x", "blocks.4:1@x/y", ":"]).map(lambda u: ["render", "efficientnet_lite0", u,
                                                                              "--out", "__OUT__"]),
        st.sampled_from(["--preset", "--set"]).map(lambda o: [*base, o]),
        st.sampled_from(["slow", "", "<b>x</b>"]).map(lambda p: [*base, "--preset", p]),
    )


def other_argv() -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(["0", "-1", "100000", "abc", "4"]).map(lambda s: ["layers", "efficientnet_lite0", "--size", s]),
        st.sampled_from(["0", "-3", "1000", "x"]).map(lambda d: ["layers", "efficientnet_lite0", "--depth", d]),
        st.sampled_from(["os:system", "sys:exit", "nosuchnet"]).map(lambda m: ["layers", m]),
        st.sampled_from(["nosuchjob", "../tiny", "<b>", "", "a/b"]).flatmap(lambda j: st.sampled_from([
            ["run", j, "--flows", "__FLOWS__"], ["status", j, "--flows", "__FLOWS__"],
            ["verify", j, "--flows", "__FLOWS__"], ["run", j, "--dry-run", "--flows", "__FLOWS__"]])),
        st.sampled_from(["/nonexistent/flows.yaml", "__OUT__", "/dev/null", "/proc/self/status"]).map(
            lambda f: ["run", "tiny", "--flows", f]),
        st.sampled_from([["site", "build", "--budget-mb", v] for v in ("nan", "inf", "-1", "0", "1e30", "x")]
                        + [["site", "serve", "--port", p, "--no-build", "--out", "__OUT__"] for p in ("-1", "70000", "x")]
                        + [["site", "build", "--site-url", u] for u in ("javascript:alert(1)", "ftp://x", '"><b>')]
                        + [["site", "build", "--store", s] for s in ("/nonexistent", "/dev/null", "__FLOWS__")]
                        + [["site", "build", "--store", "__STORE__", "--out", o] for o in ("/", "__STORE__/site",
                                                                                          "__FLOWS__")]
                        + [["site", "publish", "--budget-mb", "nan"], ["site", "frobnicate"], ["site"],
                           ["deploy", "--flows", "__FLOWS__", "--job", "nosuchjob"], ["frobnicate"], []]),
    )


def test_hostile_settings_of_every_command_are_one_line(sandbox, pristine, no_render):
    flows = sandbox / "settings-flows.yaml"
    flows.write_text(TINY_JOB.format(store=sandbox / "settings-store", batch=4, extra=""))

    @settings(PROPERTY, max_examples=EXAMPLES * 3)
    @given(st.one_of(render_argv(), other_argv()))
    def check(argv):
        out_dir = sandbox / "settings-out"
        argv = [a.replace("__OUT__", str(out_dir)).replace("__FLOWS__", str(flows))
                .replace("__STORE__", str(pristine)) for a in argv]
        before = sorted(p.name for p in sandbox.iterdir())
        store_before = tree(pristine)
        code, out, err = run(argv)
        assert code == 2, (argv, code, out[-500:], err[-2000:])
        check_exit(argv, code, err)
        assert not out_dir.exists(), (argv, "wrote its output")
        assert sorted(p.name for p in sandbox.iterdir()) == before, argv
        assert tree(pristine) == store_before, argv
        COUNTS["hostile command line"] += 1
        COUNTS[f"(command line) {argv[0] if argv else '(none)'}"] += 1

    check()


def test_budget_refuses_what_cannot_fit_in_one_line(lite0):
    """Item 4: settings every check allows can still not fit; the plan says so, and what would."""
    from featvis_core import FeatvisError, preset
    from featvis_pipeline.budget import check_tile, free_memory

    free = free_memory("cpu")
    assert free and free > 0
    for changes in ({"size": 2048}, {"augment": {"copies": 64}}, {"steps": 100_000, "frames": 1000}):
        with pytest.raises(FeatvisError) as error:
            check_tile(lite0, "blocks.10", 4096, preset("fast", **changes), "cpu")
        message = str(error.value)
        assert "\n" not in message and ("would fit" in message or "or less" in message or "does not fit" in message)
        COUNTS["budget refusals"] += 1
    assert check_tile(lite0, "blocks.10", 16, preset("fast"), "cpu").bytes < 2e9
    assert not math.isnan(check_tile(lite0, "logits", 16, preset("lucid"), "cpu").seconds)
