"""flows.yaml validation, planning, content keys and tiles (no rendering)."""

import pytest

from featvis_core import FeatvisError
from featvis_pipeline.jobs import load_job, load_jobs
from featvis_pipeline.plan import make_plan, match_layers


def write(tmp_path, text):
    path = tmp_path / "flows.yaml"
    path.write_text(text)
    return path


def plan_of(tmp_path, lite0, job_text):
    path = write(tmp_path, f"jobs:\n  j:\n{job_text}")
    return make_plan("j", load_job(path, "j"), lite0)


def test_shipped_flows_yaml_is_valid():
    jobs = load_jobs("flows.yaml")
    assert {"demo", "resnet50", "googlenet", "vgg19", "resnet18", "efficientnet_lite0"} <= set(jobs)
    assert jobs["resnet50"].cron and jobs["demo"].preset == "coarse-to-fine"


def test_defaults_merge_into_jobs(tmp_path):
    path = write(tmp_path, "defaults:\n  batch: 8\n  overrides: {steps: 10}\njobs:\n"
                           "  a: {model: efficientnet_lite0, logits: all, overrides: {size: 64}}\n")
    job = load_job(path, "a")
    assert job.batch == 8 and job.overrides == {"steps": 10, "size": 64}
    assert job.render_config().steps == 10 and job.render_config().size == 64


@pytest.mark.parametrize("text, message", [
    ("jobs:\n  a: {model: nosuchnet, logits: all}\n", "job 'a': model: unknown model 'nosuchnet'"),
    ("jobs:\n  a: {model: efficientnet_lite0, logits: all, bacth: 4}\n", "job 'a': bacth: unknown field"),
    ("jobs:\n  a: {model: efficientnet_lite0}\n", "a job needs layers, logits or both"),
    ("jobs:\n  a: {model: efficientnet_lite0, logits: all, cron: 'every day'}\n", "cron 'every day' does not parse"),
    ("jobs:\n  a: {model: efficientnet_lite0, logits: all, overrides: {steps: 0}}\n", "overrides: steps must be positive and at most 100,000, got 0"),
    ("jobs:\n  a: {model: efficientnet_lite0, logits: all, overrides: {stpes: 3}}\n", "unknown render setting(s): stpes"),
    ("jobs:\n  a: {model: efficientnet_lite0, logits: all, preset: slow}\n", "unknown preset 'slow'"),
    ("jobs:\n  a: {model: efficientnet_lite0, logits: all, batch: 0}\n", "batch: must be at least 1, got 0"),
    ("- a\n- b\n", "expected a mapping with a 'jobs' key, got list"),
    ("jobs: [\n", "is not valid YAML"),
    ("jobs:\n  a: 3\n", "job 'a': expected a mapping of fields, got int"),
    ("jobz: {}\n", "jobs: required field is missing"),
    ("jobs: {}\nextra: 1\n", "extra: unknown field"),
])
def test_bad_flows_give_one_line(tmp_path, text, message):
    with pytest.raises(FeatvisError) as error:
        load_jobs(write(tmp_path, text))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_store_path_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FeatvisError, match="is a file, not a folder"):
        load_jobs(write(tmp_path, f"jobs:\n  a: {{model: efficientnet_lite0, logits: all, store: {tmp_path / 'afile'}}}\n"))


def test_planner_checks_units_against_the_model(tmp_path, lite0):
    with pytest.raises(FeatvisError, match="channel 200 out of range: the layer has 112"):
        plan_of(tmp_path, lite0, "    model: efficientnet_lite0\n    layers: {blocks.10: 200}\n")
    with pytest.raises(FeatvisError, match="unknown class 'hne'"):
        plan_of(tmp_path, lite0, "    model: efficientnet_lite0\n    logits: [hne]\n")
    with pytest.raises(FeatvisError, match="matches no layer"):
        plan_of(tmp_path, lite0, "    model: efficientnet_lite0\n    layers: {'layer*': all}\n")
    with pytest.raises(FeatvisError, match="below efficientnet_lite0's minimum"):
        plan_of(tmp_path, lite0, "    model: efficientnet_lite0\n    logits: all\n    overrides: {size: 16}\n")


def test_globs_stay_within_one_dotted_part(lite0):
    names = [layer.name for layer in match_layers(lite0, "blocks.*")]
    assert names == [f"blocks.{i}" for i in range(16)]
    assert [layer.name for layer in match_layers(lite0, "blocks.1?")] == [f"blocks.{i}" for i in range(10, 16)]


def test_keys_are_stable_and_follow_settings(tmp_path, lite0):
    job = "    model: efficientnet_lite0\n    layers: {blocks.10: 0-3, 'blocks.4': [1]}\n    logits: [hen]\n"
    first, again = plan_of(tmp_path, lite0, job), plan_of(tmp_path, lite0, job)
    assert [u.key for u in first.units] == [u.key for u in again.units]
    assert len({u.key for u in first.units}) == 6
    changed = plan_of(tmp_path, lite0, job + "    overrides: {steps: 7}\n")
    assert not {u.key for u in first.units} & {u.key for u in changed.units}
    assert first.units[-1].path.startswith("efficientnet_lite0/logits/k0008@")
    assert first.units[-1].label == "hen"


def test_tiles_hold_one_layer_and_at_most_a_batch(tmp_path, lite0):
    plan = plan_of(tmp_path, lite0, "    model: efficientnet_lite0\n    layers: {blocks.10: 0-9, blocks.4: 0-2}\n"
                                    "    batch: 4\n    diversity: 2\n")
    tiles = plan.tiles(plan.units)
    assert [len(t.units) for t in tiles] == [2, 2, 2, 2, 2, 2, 1]  # 4 images per tile = 2 units x 2 copies
    assert all(len({u.split(":")[0] for u in t.units}) == 1 for t in tiles)
    left, right = tiles[0].split()
    assert left.units + right.units == tiles[0].units
