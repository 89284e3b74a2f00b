"""Building the gallery from a synthetic store: pages, published media, search index, strictness, budget."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from featvis_site import pages
from featvis_site.build import BuildReport, build_site
from featvis_site.errors import BuildFailed, SiteError
from featvis_site.layout import rel
from featvis_site.linkcheck import check_site
from featvis_site.media import plan_media
from featvis_site.store_reader import read_store
from bench.synthetic import SyntheticModel, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), [SyntheticModel()])


@pytest.fixture(scope="module")
def built(store: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    return build_site(store, tmp_path_factory.mktemp("out") / "site")


def _html(report: BuildReport, page: str) -> str:
    return (report.site_dir / page / "index.html").read_text(encoding="utf-8")


def test_site_has_every_page_and_no_page_per_unit(built: BuildReport) -> None:
    site = built.site_dir
    for page in ("", "compare/", "models/toynet/", "models/toynet/block1/", "models/toynet/block2/",
                 "models/toynet/logits/"):
        assert (site / page / "index.html").is_file(), page
    html_pages = [p for p in site.rglob("index.html") if "media" not in p.parts]
    assert len(html_pages) == built.pages == 6
    assert (site / ".nojekyll").is_file()
    assert built.published == 28 and built.units == 34


def test_published_media_are_the_verified_store_files_hard_linked(built: BuildReport, store: Path) -> None:
    atlas = read_store(store)
    site = built.site_dir
    for unit in atlas.units:
        folder = site / "media" / unit.path
        if unit.published:
            for name in ("thumb.webp", "image.webp", "anim.mp4", "unit.json", "diversity/1.webp"):
                assert (folder / name).is_file(), (unit.unit, name)
            assert os.path.samefile(folder / "thumb.webp", store / unit.path / "thumb.webp")
        else:
            assert not folder.exists(), f"{unit.unit} ({unit.state}) must not be published"
    assert not list(site.rglob("image.png")), "the lossless PNG is never published"
    assert not list(site.rglob("meta.json"))


def test_layer_grid_has_a_cell_per_unit_and_pending_placeholders(built: BuildReport, store: Path) -> None:
    layer = read_store(store).models[0].layers[0]
    html = _html(built, "models/toynet/block1")
    cells = re.findall(r'<(a|div) class="fv-cell[^"]*"', html)
    assert len(cells) == len(layer.units)
    assert html.count('class="fv-cell fv-pending"') == sum(not u.published for u in layer.units) >= 2
    assert 'data-state="corrupt"' in html and 'data-state="failed"' in html
    assert html.count('loading="lazy"') >= len(layer.published)
    # the hover preview is the unit's MP4
    assert html.count("data-anim=") == len(layer.published) == len(re.findall(r'data-anim="[^"]*/anim\.mp4"', html))


def test_logits_page_lists_class_names_filterable(built: BuildReport) -> None:
    html = _html(built, "models/toynet/logits")
    assert html.count('class="fv-cell') == 20
    assert 'data-name="3 tiger shark' in html and "<b>2</b> great white shark" in html
    assert 'data-page-size="120"' in html and 'class="md-input fv-filter"' in html


def test_model_overview_home_and_compare(built: BuildReport) -> None:
    overview = _html(built, "models/toynet")
    assert "filters.png" in overview and "Render settings" in overview and "transforms.jitter" in overview
    assert overview.count('class="fv-strip"') == 3  # one strip per layer + logits
    home = _html(built, "")
    assert "toynet" in home and "28</b> of 34 units rendered" in home and "preset <code>fast</code>" in home
    compare = _html(built, "compare")
    assert compare.count('class="fv-row"') == 20 and "One model so far" in compare


def test_grid_pages_stay_out_of_the_search_index(built: BuildReport) -> None:
    index = json.loads((built.site_dir / "search" / "search_index.json").read_text())
    locations = {doc["location"].split("#")[0] for doc in index["docs"]}
    assert "models/toynet/" in locations
    assert not {loc for loc in locations if loc.startswith(("models/toynet/block", "compare"))}
    logits = " ".join(d["text"] for d in index["docs"] if d["location"].startswith("models/toynet/logits/"))
    assert "great white shark" in logits  # class names are searchable


def test_unit_json_feeds_the_lightbox(built: BuildReport, store: Path) -> None:
    unit = next(u for u in read_store(store).units if u.published and u.kind == "logit")
    data = json.loads((built.site_dir / "media" / unit.path / "unit.json").read_text())
    assert data["name"] == unit.label and data["mp4"] == "anim.mp4" and data["image"] == "image.webp"
    assert "anim" not in data
    assert 2 <= len(data["history"]) <= 96 and data["activation"]["best"] is not None
    assert {"self_top1", "lite1_top5"} <= set(data["scores"])


def test_no_broken_references_and_checker_sees_missing_files(built: BuildReport, tmp_path: Path) -> None:
    assert check_site(built.site_dir) == []
    copy = Path(shutil.copytree(built.site_dir, tmp_path / "copy"))
    victim = next((copy / "media").rglob("thumb.webp"))
    victim.unlink()
    broken = check_site(copy)
    assert broken and all(b.url.endswith("thumb.webp") for b in broken)
    assert any(b.source == "models/toynet/block1/index.html" or "logits" in b.source for b in broken)


def test_strict_build_fails_on_a_broken_link(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    original = pages.render_pages

    def with_broken_image(atlas, plan):  # type: ignore[no-untyped-def]
        out = original(atlas, plan)
        home = out[0]
        assert home.path == "index.md"
        return [pages.Page(home.path, home.text + '\n<img src="media/nowhere.webp" alt="x">\n')] + out[1:]

    monkeypatch.setattr(pages, "render_pages", with_broken_image)
    with caplog.at_level("WARNING", logger="mkdocs"), pytest.raises(BuildFailed, match="strict"):
        build_site(store, tmp_path / "strict" / "site")
    assert "media/nowhere.webp" in caplog.text and "broken reference" in caplog.text
    report = build_site(store, tmp_path / "lenient" / "site", strict=False)
    assert "media/nowhere.webp" in (report.site_dir / "index.html").read_text()


def test_budget_drops_optional_media_not_thumbnails(store: Path, tmp_path: Path) -> None:
    atlas = read_store(store)
    full = plan_media(atlas)
    assert full.dropped == []
    thumbs_and_images = sum(u.files["thumb"].size + u.files["image_web"].size for u in atlas.units if u.published)
    tight = plan_media(read_store(store), budget=8_000_000 + 2_000 * 28 + thumbs_and_images + 10_000)
    assert tight.dropped[0] == "diversity images" and any("MP4" in d for d in tight.dropped)
    assert all(a.diversity == () for a in tight.units.values())
    report = build_site(store, tmp_path / "small" / "site", budget=tight.budget)
    assert report.dropped == tight.dropped
    assert not list(report.site_dir.rglob("anim.mp4")) and list(report.site_dir.rglob("thumb.webp"))
    assert "data-anim=" not in (report.site_dir / "models" / "toynet" / "block1" / "index.html").read_text()
    assert "Some media are left out" in (report.site_dir / "index.html").read_text()
    assert check_site(report.site_dir) == []


def test_an_older_store_with_anim_webp_builds_without_publishing_it(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store", [SyntheticModel(legacy_anim=True, corrupt=0)])
    assert list(store.rglob("anim.webp"))
    report = build_site(store, tmp_path / "out" / "site")
    assert report.published == sum(u.published for u in read_store(store).units) > 0
    assert not list(report.site_dir.rglob("anim.webp"))
    assert len(list(report.site_dir.rglob("anim.mp4"))) == report.published
    assert check_site(report.site_dir) == []


def test_output_folder_guards(store: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(SiteError, match="refusing to overwrite"):
        build_site(store, precious)
    assert (precious / "thesis.tex").exists()
    with pytest.raises(SiteError, match="overlaps the store"):
        build_site(store, store / "site")


def test_rebuild_into_the_same_folder(store: Path, tmp_path: Path) -> None:
    first = build_site(store, tmp_path / "site")
    second = build_site(store, tmp_path / "site")
    assert second.files == first.files and check_site(second.site_dir) == []


def test_nav_has_models_layers_and_compare() -> None:
    assert rel("models/m/l.md", "media/x/thumb.webp") == "../../../media/x/thumb.webp"
    assert rel("index.md", "models/m/") == "models/m/"
    assert rel("models/m/index.md", "models/m/l/") == "l/"
    assert rel("compare.md", "models/m/") == "../models/m/"


def test_two_models_compare_and_other_unit_kinds(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store", [
        SyntheticModel(name="toynet", render={"block1": 3}, logits=6, pending_every=0, failed=0, corrupt=0,
                       diversity=1, other_kinds=True),
        SyntheticModel(name="othernet", render={"stage2": 2}, layers={"stage2": 8}, logits=[2, 3, 4, 7],
                       pending_every=0, failed=0, corrupt=0, diversity=1, filters=False),
    ])
    report = build_site(store, tmp_path / "site")
    compare = _html(report, "compare")
    assert compare.count('class="fv-row"') == 7  # classes 0-5 and 7, the union of both models
    assert compare.count('class="fv-cell fv-absent"') == 7 * 2 - (6 + 4)
    assert "One model so far" not in compare and "--fv-cols:2" in compare
    layer = _html(report, "models/toynet/block1")
    for heading in ("Channels", "Neurons", "Negative channels", "DeepDream"):
        assert f">{heading}<" in layer, heading
    assert ">1 @ 7,7<" in layer and ">−2<" in layer and ">whole layer<" in layer  # captions from units.KINDS
    home = _html(report, "")
    assert home.count("fv-card-title") == 2
    assert "filters.png" not in _html(report, "models/othernet")
    assert check_site(report.site_dir) == []


def test_copies_when_hard_links_are_impossible_and_site_url_prefix(store: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    report = build_site(store, tmp_path / "site", site_url="https://example.github.io/atlas/")
    thumb = next((report.site_dir / "media").rglob("thumb.webp"))
    assert thumb.stat().st_nlink == 1  # a copy, not a link into the store
    assert '<link rel="canonical" href="https://example.github.io/atlas/' in _html(report, "models/toynet")
    assert check_site(report.site_dir, "https://example.github.io/atlas/") == []


def test_relative_paths_build_like_the_cli_passes_them(store: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # `featvis run demo` hands the builder "out/site": MkDocs resolves paths against its config file
    shutil.copytree(store, tmp_path / "store")
    monkeypatch.chdir(tmp_path)
    report = build_site("store", "out/site")
    assert (tmp_path / "out" / "site" / "index.html").exists() and report.published > 0


def test_build_never_writes_outside_its_folders(store: Path, tmp_path: Path) -> None:
    """Issue 13, item 2: a manifest path with `..` is refused as a whole (one line, exit 2); media plan entries
    that would leave the site are never linked; generated files stay inside docs and unit data."""
    from featvis_site.cli import main as site_main
    from featvis_site.hooks import link_media
    from featvis_site.layout import inside

    copy = Path(shutil.copytree(store, tmp_path / "store"))
    data = json.loads((copy / "manifests" / "demo.json").read_text())
    data["units"][0]["path"] = "../../../escaped"
    (copy / "manifests" / "demo.json").write_text(json.dumps(data))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert site_main(["build", "--store", str(copy), "--out", str(tmp_path / "out" / "site")]) == 2
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before

    site = tmp_path / "linked"
    site.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    files, _ = link_media([["../victim.txt", str(copy / "manifests" / "demo.json")],
                           ["/etc/x", str(copy / "manifests" / "demo.json")]], site)
    assert files == 0 and victim.read_text() == "keep" and list(site.iterdir()) == []
    for bad in ("../x", "/x", "", "a//b", "a/./b", "a/../../b"):
        with pytest.raises(ValueError):
            inside(site, bad)


def test_page_names_never_collide() -> None:
    from featvis_site.layout import safe_name

    names = ["index", "layer-index", "a b", "a_b", "a:b", "blocks.10", "logits-page", "..", "_", "x" * 200,
             "x" * 201, "<b>", "&lt;b&gt;"]
    assert len({safe_name(n) for n in names}) == len(names)
    assert safe_name("blocks.10") == "blocks.10" and "/" not in "".join(safe_name(n) for n in names)
