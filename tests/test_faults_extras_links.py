"""Links in a store's extras are never followed (issue 19, item 2.4): `featvis verify` reports a symbolic
link (or a special file) anywhere under examples/, circuits/ and zoom/ as a problem and `--repair` removes
the link, never what it points to; the extras pass neither reads through one (a linked extras manifest is
not taken for the job's own) nor writes through one."""

from __future__ import annotations

import json
import os
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from conftest import TINY_JOB
from test_faults_datasets import good_image


def run(argv: list[str]) -> tuple[int, str, str]:
    from featvis_pipeline.cli import main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_verify_reports_and_repairs_every_link_in_the_extras(tmp_path):
    store, outside = tmp_path / "store", tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.json").write_text(json.dumps({"job": "tiny", "model": "efficientnet_lite0", "secret": 1}))
    (outside / "dir" / "keep.json").write_text("{}")
    manifests = store / "examples" / "manifests"
    manifests.mkdir(parents=True)
    (manifests / "tiny.json").symlink_to(outside / "secret.json")
    (manifests / "other.json").write_text("[1, 2]")  # not an object
    (manifests / "fine.json").write_text("{}")
    (store / "examples" / "shards").symlink_to(outside / "dir", target_is_directory=True)
    (store / "circuits").symlink_to(outside / "dir", target_is_directory=True)
    (store / "zoom" / "efficientnet_lite0").mkdir(parents=True)
    os.mkfifo(store / "zoom" / "efficientnet_lite0" / "k0001@000000000000")
    flows = tmp_path / "flows.yaml"
    flows.write_text(TINY_JOB.format(store=store, batch=4, extra=""))
    before = snapshot(outside)

    code, out, err = run(["verify", "--flows", str(flows)])
    assert code == 1 and err == "", err
    lines = out.splitlines()
    for phrase in ("examples/manifests/tiny.json is a symbolic link", "examples/shards is a symbolic link",
                   "circuits is a symbolic link", "zoom/efficientnet_lite0/k0001@000000000000 is not a regular file",
                   "examples/manifests/other.json is not a readable extras manifest"):
        assert sum(phrase in line for line in lines) == 1, (phrase, lines)
    assert "fine.json" not in out and "secret" not in out
    assert lines[-1] == "checked 0 units: 5 corrupt found (--repair removes them)"

    code, out, err = run(["verify", "--repair", "--flows", str(flows)])
    assert code == 0 and err == "", err
    assert snapshot(outside) == before and (outside / "dir").is_dir()
    assert not any(p.is_symlink() for p in store.rglob("*")) and (manifests / "fine.json").exists()
    code, out, _ = run(["verify", "--flows", str(flows)])
    assert code == 0 and out.splitlines()[-1] == "checked 0 units: 0 corrupt"


def test_the_extras_pass_never_reads_or_writes_through_a_link(lite0, tmp_path):
    from featvis_pipeline import extras
    from featvis_pipeline.jobs import JobSpec
    from featvis_pipeline.plan import make_plan
    from featvis_pipeline.store import Store
    from featvis_pipeline.storeformat import StoreFormatError

    images, outside = tmp_path / "images", tmp_path / "outside"
    images.mkdir()
    outside.mkdir()
    for i in range(2):
        (images / f"im{i}.png").write_bytes(good_image(i))
    job = JobSpec.model_validate({
        "model": "efficientnet_lite0", "layers": {"blocks.4": "0-1"}, "store": str(tmp_path / "store"),
        "overrides": {"size": 48, "steps": 8},
        "examples": {"folder": str(images), "top": 1, "negatives": 0, "explain": False, "circuits": False}})
    plan = make_plan("tiny", job, lite0)
    store = Store(job.store)
    state = extras.state_key("tiny", job, plan, store, Path("."))
    # a manifest outside that claims the extras are done, linked into the store as the job's own
    (outside / "claims.json").write_text(json.dumps({"state": state, "job": "tiny", "examples": {"secret": 1}}))
    (store.root / "examples" / "manifests").mkdir(parents=True)
    (store.root / "examples" / "manifests" / "tiny.json").symlink_to(outside / "claims.json")
    assert extras.pending("tiny", job, plan, store) is True  # the linked file is not read as the job's manifest
    extras.run_extras("tiny", job, plan, store)
    written = store.root / "examples" / "manifests" / "tiny.json"
    assert not written.is_symlink() and json.loads(written.read_text())["state"] == state
    assert json.loads((outside / "claims.json").read_text())["examples"] == {"secret": 1}
    assert extras.pending("tiny", job, plan, store) is False

    # a linked folder on the way: refused, nothing written outside
    shards = store.root / "examples" / "shards"
    for path in sorted(shards.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    shards.rmdir()
    shards.symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreFormatError, match="symbolic link"):
        store.write_json("examples/shards/m/l/x.json", {"a": 1})
    assert sorted(p.name for p in outside.iterdir()) == ["claims.json"]
    from featvis_pipeline import examples as ex

    replanned = ex.plan_examples(job.examples, store, job.model, lite0.fingerprint, plan.model_dir, lite0.input_size,
                                 [u.unit for u in plan.units])
    assert replanned.missing  # the shards cannot be read through the link: they count as missing
