"""The site's store reader: manifest states, checksum verification, dedup, and user errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featvis_site.errors import SiteError
from featvis_site.store_reader import read_store
from featvis_site.verify import HISTORY_POINTS, downsample
from bench.synthetic import SyntheticModel, class_names, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), [SyntheticModel(diversity=2)])


@pytest.fixture()
def store_copy(store: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(store, tmp_path / "store"))


def _manifest(store: Path) -> dict:
    return json.loads((store / "manifests" / "demo.json").read_text())


def test_states_follow_manifest_and_checksums(store: Path) -> None:
    atlas = read_store(store)
    units = {u.unit: u for u in atlas.units}
    manifest = {u["unit"]: u for u in _manifest(store)["units"]}
    assert set(units) == set(manifest)
    states = {s: sum(u.state == s for u in units.values()) for s in ("done", "pending", "failed", "corrupt")}
    assert states["pending"] == sum(u["state"] == "pending" for u in manifest.values()) > 0
    assert states["failed"] == 1 and states["corrupt"] == 1
    corrupt = next(u for u in units.values() if u.state == "corrupt")
    assert manifest[corrupt.unit]["state"] == "done"  # the manifest says done, the bytes say otherwise
    assert "checksum" in (corrupt.reason or "")
    for unit in units.values():
        if unit.published:
            assert set(unit.files) == {"thumb", "image_web", "mp4"}  # the lossless image.png stays in the store
            assert len(unit.diversity) == 1
            assert unit.activation is not None and 2 <= len(unit.activation.history) <= HISTORY_POINTS
        else:
            assert not unit.files


def test_an_older_store_with_anim_webp_still_verifies_and_the_file_is_ignored(tmp_path: Path) -> None:
    """Stores written before the hover preview became the MP4 list an anim.webp (role anim_webp) per unit:
    it is checked like every listed file, and never published."""
    store = make_store(tmp_path / "store", [SyntheticModel(legacy_anim=True, corrupt=0)])
    done = [u for u in _manifest(store)["units"] if u["state"] == "done"]
    assert all("anim_webp" in json.loads((store / u["path"] / "meta.json").read_text())["files"] for u in done)
    units = read_store(store).units
    assert sum(u.published for u in units) == len(done)
    assert all(set(u.files) == {"thumb", "image_web", "mp4"} for u in units if u.published)
    (store / done[0]["path"] / "anim.webp").unlink()
    [broken] = [u for u in read_store(store).units if u.path == done[0]["path"]]
    assert broken.state == "corrupt" and broken.reason == "anim.webp is missing"


def test_layers_in_model_order_with_logits_last_and_class_names(store: Path) -> None:
    model = read_store(store).models[0]
    assert [layer.name for layer in model.layers] == ["block1", "block2", "logits"]
    assert len(model.classes) == 1000 and model.filters is not None
    logits = model.logits
    assert logits is not None
    assert [u.index for u in logits.units] == list(range(20))
    assert [u.label for u in logits.units][:3] == ["tench", "goldfish", "great white shark"]
    assert [u.index for u in model.layers[0].units] == sorted(u.index for u in model.layers[0].units)


def test_stale_or_missing_meta_and_escaping_paths_are_not_published(store_copy: Path) -> None:
    data = _manifest(store_copy)
    done = [u for u in data["units"] if u["state"] == "done"]
    # stale: meta.json of another content key
    meta_path = store_copy / done[0]["path"] / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["key"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    # missing meta.json: not complete
    (store_copy / done[2]["path"] / "meta.json").unlink()
    # a file entry pointing outside the unit folder
    meta_path = store_copy / done[3]["path"] / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["files"]["thumb"]["path"] = "../../../model.json"
    meta_path.write_text(json.dumps(meta))
    units = {u.unit: u for u in read_store(store_copy).units}
    assert units[done[0]["unit"]].state == "corrupt" and "stale" in units[done[0]["unit"]].reason
    assert units[done[2]["unit"]].state == "corrupt" and "missing" in units[done[2]["unit"]].reason
    assert units[done[3]["unit"]].state == "corrupt" and "escapes" in units[done[3]["unit"]].reason


def test_same_unit_in_two_manifests_prefers_the_rendered_one(store_copy: Path) -> None:
    data = _manifest(store_copy)
    newer = dict(data, job="later", updated="2027-01-01T00:00:00+00:00")
    newer["units"] = [dict(u, state="pending") for u in data["units"]]
    (store_copy / "manifests" / "later.json").write_text(json.dumps(newer))
    atlas = read_store(store_copy)
    assert len(atlas.units) == len(data["units"])  # deduplicated
    assert sum(u.published for u in atlas.units) == sum(u["state"] == "done" for u in data["units"]) - 1
    assert [j.name for j in atlas.models[0].jobs] == ["demo", "later"]


def test_user_errors_are_site_errors(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="store not found"):
        read_store(tmp_path / "missing")
    with pytest.raises(SiteError, match="no manifests"):
        read_store(tmp_path)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "bad.json").write_text("{not json")
    with pytest.raises(SiteError, match="bad.json is not valid JSON"):
        read_store(tmp_path)
    (tmp_path / "manifests" / "bad.json").write_text(json.dumps({"schema": 99, "model": "m", "units": []}))
    with pytest.raises(SiteError, match="schema: must be 1, got 99"):
        read_store(tmp_path)


def test_missing_model_card_degrades_with_a_warning(store_copy: Path) -> None:
    (store_copy / "toynet" / "model.json").unlink()
    atlas = read_store(store_copy)
    assert atlas.warnings and "model.json" in atlas.warnings[0]
    assert [layer.name for layer in atlas.models[0].layers] == ["block1", "block2", "logits"]


def test_class_names_are_unique() -> None:
    names = class_names(1000)
    assert len(set(names)) == 1000 and names[3] == "tiger shark"


@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6)),
                max_size=600), st.integers(2, 200))
def test_downsample_keeps_ends_and_bounds_length(values: list, points: int) -> None:
    out = downsample(values, points)
    assert len(out) == min(len(values), points) if len(values) > points else len(out) == len(values)
    assert all(v is None or isinstance(v, float) for v in out)
    if values:
        first, last = downsample([values[0]], 2)[0], downsample([values[-1]], 2)[0]
        assert out[0] == first and out[-1] == last
