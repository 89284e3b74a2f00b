"""`featvis run` itself on a store with links planted where it writes (issue 13, items 1 and 7): a link for
a model, layer or unit folder, for `manifests`, `locks`, a lock file, a manifest, model.json, filters.png or a
leftover temporary folder. The run (a subprocess, as a user runs it) either refuses in one line before it starts (exit 2) or renders around
the link (replacing a linked unit folder by the real one); nothing outside the store changes, no traceback,
and after `featvis verify --repair` the store verifies.
"""

from __future__ import annotations

import pytest

from conftest import featvis
from test_faults_hostile import check_exit, prepare, pristine, run, sandbox, tree  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow

ATTACKS = ["model folder -> outside", "layer folder -> outside", "unit folder -> outside", "unit folder -> other unit",
           "locks -> outside", "lock file -> outside file", "manifests -> outside", "manifest -> outside file",
           "trash link -> outside", "filters.png -> outside file", "model.json -> outside file"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_run_writes_nothing_through_a_link(attack, pristine, sandbox):
    work, store, outside, flows = prepare(pristine, sandbox, [("filesystem", attack, 0)])
    sentinel = tree(outside)
    result = featvis("run", "tiny", "--flows", str(flows))  # as a user runs it: its own process and logging
    code, out, err = result.returncode, result.stdout, result.stderr
    check_exit(["run"], code, err)
    assert code in (0, 2), (code, out[-2000:], err[-2000:])
    assert tree(outside) == sentinel, f"{attack}: the run wrote or removed outside the store"
    code, out, err = run(["verify", "--repair", "--flows", str(flows)])
    assert code == 0 and tree(outside) == sentinel, (out, err)
    code, out, err = run(["verify", "--flows", str(flows)])
    assert code == 0 and "0 corrupt" in out.splitlines()[-1], (out, err)
