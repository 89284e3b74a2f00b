"""``featvis site`` CLI: exit codes, one-line user errors, build output; and the Pages workflow file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from featvis_site.cli import main
from bench.synthetic import SyntheticModel, make_store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    small = SyntheticModel(render={"block1": 3}, logits=4, pending_every=0, failed=0, corrupt=0, diversity=1)
    return make_store(tmp_path_factory.mktemp("store"), [small])


def _one_line_error(capsys: pytest.CaptureFixture[str], needle: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert needle in err


def test_missing_store_is_a_one_line_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--store", str(tmp_path / "nope"), "--out", str(tmp_path / "site")]) == 2
    _one_line_error(capsys, "store not found")


def test_store_without_manifests_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "store" / "manifests").mkdir(parents=True)
    assert main(["build", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "site")]) == 2
    _one_line_error(capsys, "no manifests")


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0


def test_build_prints_a_summary(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--store", str(store), "--out", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    assert "7/7 units published" in out and "MB" in out
    assert (tmp_path / "site" / "models" / "toynet" / "block1" / "index.html").is_file()
    assert (tmp_path / "site-src" / "mkdocs.yml").is_file()  # generated files stay outside the source tree
    assert not (REPO / "site" / "docs").exists()


def test_serve_without_a_site_and_publish_outside_git(store: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["serve", "--no-build", "--out", str(tmp_path / "empty")]) == 2
    _one_line_error(capsys, "holds no built site")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert main(["publish", "--store", str(store), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("is not inside a git repository; run publish from the project's repository")


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "featvis_site", "build", "--store", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "store not found" in proc.stderr


def test_pages_workflow_builds_and_deploys() -> None:
    flow = yaml.safe_load((REPO / ".github" / "workflows" / "pages.yml").read_text())
    triggers = flow.get("on") or flow.get(True)  # YAML 1.1 reads a bare `on` as True
    assert "push" in triggers and "workflow_dispatch" in triggers
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    uses = [step.get("uses", "") for step in build["steps"]]
    assert "pip install -e ." in runs and "featvis run demo" in runs and "featvis site build" in runs
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == flow["env"]["SITE"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["steps"][0]["uses"].startswith("actions/deploy-pages@")


def test_the_site_imports_neither_torch_nor_prefect(store: Path, tmp_path: Path) -> None:
    """featvis_site reads the store through featvis_pipeline.storeformat, which is torch-free and Prefect-free:
    a whole build in a fresh interpreter loads neither."""
    code = (
        "import sys; from featvis_site.cli import main; code = main(['build', '--store', sys.argv[1], '--out', sys.argv[2]]);"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'prefect', 'torchvision'});"
        "print(heavy); sys.exit(code or bool(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(store), str(tmp_path / "site")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
