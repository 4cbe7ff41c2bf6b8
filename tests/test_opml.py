"""OPML in and out: reading exports of real readers (tests/data/opml), ``feedhub import-opml``
and ``feedhub export-opml`` end to end, and the round trip between two feedhub configs."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from feedhub.config import load_config
from feedhub.opml import OpmlError, read_opml, slugify
from tests.conftest import SourceSpec, config_text, fixture_route, run_cli
from tests.feedserver import FeedServer

OPML = Path(__file__).parent / "data" / "opml"
YW = "https://rsshub.example.cn/stcn/article/list/yw"


def inserted_lines(before: str, after: str) -> list[str]:
    """Lines ``after`` adds to ``before``; fails if any line was changed or removed."""
    added: list[str] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        assert tag in ("equal", "insert"), tag
        if tag == "insert":
            added += after.splitlines()[j1:j2]
    return added


def sources_of(config: Path) -> dict[str, tuple[str, str | None]]:
    """URL → (category, name) of a config's sources."""
    return {s.url: (s.category, s.name) for s in load_config(config).sources}


def categories_of(config: Path) -> dict[str, str]:
    return {c.slug: c.title for c in load_config(config).categories.values()}


# --- reading -------------------------------------------------------------------------------------


def test_read_feedly_export() -> None:
    """Folders are categories; titles with markup-like characters come out as text."""
    doc = read_opml((OPML / "feedly.opml").read_bytes())
    assert doc.title == "张伟 subscriptions in feedly Cloud"
    assert [(f.folders, f.title) for f in doc.feeds] == [
        (("证券",), "证券时报网 要闻"), (("证券",), "证券时报网 快讯"), (("证券",), "中证网 新闻资讯"),
        (("Markets",), "Reuters: Markets & Finance"), (("Markets",), "FT Alphaville"),
        (("财联社",), "财联社 电报")]
    assert doc.feeds[0].xml_url == YW
    assert doc.feeds[0].html_url == "https://www.stcn.example.cn/article/list/yw.html"
    assert doc.feeds[4].xml_url == "https://www.example.com/alphaville?format=rss"
    assert doc.skipped == ()


def test_read_nested_missing_type_and_page_only_outlines() -> None:
    """Nested folders, feeds without type, top-level feeds, and outlines that are no feeds."""
    nnw = read_opml((OPML / "netnewswire.opml").read_bytes())
    assert [(f.folders, f.title) for f in nnw.feeds] == [
        ((), "Daring Fireball"), ((), "经济观察网"), (("财经",), "证券时报网 股市"),
        (("财经",), "新浪财经 滚动")]  # the last one has no type= at all
    ino = read_opml((OPML / "inoreader.xml").read_bytes())
    assert [f.folders for f in ino.feeds] == [("财经", "A股"), ("财经", "A股"), ("财经",),
                                              ("Tech News",), ()]
    gb = read_opml((OPML / "gb18030_reader.opml").read_bytes())  # declared and encoded GB18030
    assert gb.title == "我的订阅"
    assert [f.folders for f in gb.feeds][:2] == [("新闻", "国内", "宏观"), ("新闻", "国内")]
    assert gb.feeds[1].html_url is None
    assert [what for what, _ in gb.skipped] == ["东方财富网 (https://www.eastmoney.example.cn/)",
                                               "上交所公告"]
    assert "feedhub add https://www.eastmoney.example.cn/" in gb.skipped[0][1]


@pytest.mark.parametrize("name", ["billion_laughs.opml", "xxe.opml"])
def test_entities_are_refused_never_expanded(name: str) -> None:
    started = time.monotonic()
    with pytest.raises(OpmlError, match="entities"):
        read_opml((OPML / name).read_bytes())
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("data, message", [
    (b"<rss version='2.0'><channel/></rss>", "not <opml>"),
    (b"<opml version='2.0'><head/></opml>", "no <body>"),
    (b"<opml><body><outline", "not well-formed"),
    (b"\x00\x01 binary", "not well-formed"),
])
def test_not_opml(data: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        read_opml(data)


def test_slugify() -> None:
    """ASCII labels read as slugs; others get a stable hash, never an empty or reserved slug."""
    assert slugify("Tech News") == "tech-news"
    assert slugify("  Markets & Finance! ") == "markets-finance"
    assert slugify("证券") == slugify("证券") == "cat-" + slugify("证券")[4:]
    assert slugify("证券") != slugify("财经")
    assert len(slugify("证券")) == 12
    assert slugify("All").startswith("cat-") and slugify("!!!").startswith("cat-")


# --- feedhub import-opml --------------------------------------------------------------------------


def test_import_dry_run_then_for_real(write_config: Callable[..., Path]) -> None:
    """--dry-run shows the plan and writes nothing; the import inserts exactly those lines."""
    config = write_config([SourceSpec("http://127.0.0.1:9/existing.xml")])
    before = config.read_text(encoding="utf-8")
    dry = run_cli("import-opml", str(OPML / "feedly.opml"), "--dry-run", config=config)
    assert dry.code == 0, dry.stderr
    zq, cls = slugify("证券"), slugify("财联社")
    assert f"+ {zq}  证券" in dry.stdout and "+ markets  Markets" in dry.stdout
    assert f"+ {YW}  证券时报网 要闻" in dry.stdout
    assert "Dry run: would add 6 sources and 3 new categories; nothing written." in dry.stdout
    assert config.read_text(encoding="utf-8") == before

    real = run_cli("import-opml", str(OPML / "feedly.opml"), config=config)
    assert real.code == 0, real.stderr
    assert "Added 6 sources and 3 new categories" in real.stdout
    after = config.read_text(encoding="utf-8")
    added = inserted_lines(before, after)
    assert added[:6] == [f"  {zq}:", "    title: 证券", "  markets:", "    title: Markets",
                         f"  {cls}:", "    title: 财联社"]
    assert added[6:9] == [f"  - url: {YW}", f"    category: {zq}", "    name: 证券时报网 要闻"]
    assert "    name: 'Reuters: Markets & Finance'" in added
    assert run_cli("check", config=config).code == 0
    assert categories_of(config)[zq] == "证券"
    assert sources_of(config)["https://www.example.com/alphaville?format=rss"] == (
        "markets", "FT Alphaville")
    # Importing the same file again adds nothing.
    again = run_cli("import-opml", str(OPML / "feedly.opml"), config=config)
    assert again.code == 0 and "Nothing to import." in again.stdout
    assert again.stdout.count("already in feeds.yaml") == 6
    assert config.read_text(encoding="utf-8") == after


def test_import_maps_folders_to_existing_categories(write_config: Callable[..., Path]) -> None:
    """A folder named like an existing category's title (or slug) goes there; top-level
    feeds go to 'uncategorized'; duplicates and non-http addresses are skipped."""
    config = write_config([SourceSpec("http://127.0.0.1:9/existing.xml")],
                          extra_categories="  caijing:\n    title: 新闻\n")
    result = run_cli("import-opml", str(OPML / "gb18030_reader.opml"), config=config)
    assert result.code == 0, result.stderr
    sources = sources_of(config)
    assert sources["http://www.stats.example.cn/sj/zxfb/rss.xml"][0] == slugify("宏观")
    assert sources["http://www.people.example.cn/rss/finance.xml"][0] == slugify("国内")
    assert sources[YW] == ("caijing", "证券时报网 要闻（重复）")  # folder 新闻 = title of caijing
    assert "listed twice in the file" in result.stdout
    assert "file:///etc/passwd" in result.stdout and "not an http(s) feed address" in result.stdout
    assert "feedhub add https://www.eastmoney.example.cn/" in result.stdout
    assert set(categories_of(config)) == {"zhengquanshibaowang", "other", "caijing",
                                          slugify("宏观"), slugify("国内")}
    nnw = run_cli("import-opml", str(OPML / "netnewswire.opml"), config=config)
    assert nnw.code == 0, nnw.stderr
    assert sources_of(config)["https://daringfireball.example/feeds/main"] == (
        "uncategorized", "Daring Fireball")
    assert categories_of(config)["uncategorized"] == "未分类"


def fresh_config(folder: Path) -> Path:
    """The test feeds.yaml with one never-polled source, in its own folder."""
    folder.mkdir()
    path = folder / "feeds.yaml"
    path.write_text(config_text([SourceSpec("http://127.0.0.1:9/existing.xml")]), encoding="utf-8")
    return path


def test_import_into_one_category(tmp_path: Path) -> None:
    """--category puts every feed in one category, created with --label if missing."""
    config = fresh_config(tmp_path / "a")
    result = run_cli("import-opml", str(OPML / "inoreader.xml"), "--category", "inbox",
                     "--label", "收件箱", config=config)
    assert result.code == 0, result.stderr
    assert {c for c, _ in sources_of(config).values()} == {"zhengquanshibaowang", "inbox"}
    assert categories_of(config)["inbox"] == "收件箱"
    existing = fresh_config(tmp_path / "b")
    assert run_cli("import-opml", str(OPML / "inoreader.xml"), "--category", "other",
                   config=existing).code == 0
    assert set(categories_of(existing)) == {"zhengquanshibaowang", "other"}
    bad = run_cli("import-opml", str(OPML / "inoreader.xml"), "--category", "Not A Slug",
                  config=fresh_config(tmp_path / "c"))
    assert bad.code == 2 and "invalid category slug" in bad.stderr


def test_import_refuses_hostile_files(write_config: Callable[..., Path]) -> None:
    config = write_config([SourceSpec("http://127.0.0.1:9/existing.xml")])
    before = config.read_bytes()
    for name in ("billion_laughs.opml", "xxe.opml"):
        result = run_cli("import-opml", str(OPML / name), config=config)
        assert result.code == 1 and "entities" in result.stderr
        assert "root:" not in result.stdout + result.stderr
    assert config.read_bytes() == before


# --- feedhub export-opml and the round trip -----------------------------------------------------------


def test_round_trip_between_two_configs(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    """Import a reader's export, export it again, import that elsewhere: same sources, same
    categories (slugs included), same names; the export reads back to the same groups."""
    first = write_config([SourceSpec("http://127.0.0.1:9/existing.xml")])
    assert run_cli("import-opml", str(OPML / "inoreader.xml"), config=first).code == 0
    exported = run_cli("export-opml", config=first)
    assert exported.code == 0, exported.stderr
    assert exported.stdout.startswith("<?xml version='1.0' encoding='utf-8'?>\n<opml version=\"2.0\">")
    doc = read_opml(exported.stdout.encode())
    cfg = load_config(first)
    assert [(f.folder_slug, f.folders, f.xml_url, f.title) for f in doc.feeds] == [
        (s.category, (cfg.categories[s.category].title,), s.url, s.name or s.url)
        for c in cfg.categories for s in cfg.sources_in(c)]

    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = second_dir / "feeds.yaml"
    second.write_text("site:\n  title: 另一个聚合\n  base_url: http://127.0.0.1:8081/\n"
                      "categories:\n  misc:\n    title: 杂项\nsources: []\n", encoding="utf-8")
    opml_file = tmp_path / "export.opml"
    opml_file.write_text(exported.stdout, encoding="utf-8")
    result = run_cli("import-opml", str(opml_file), config=second)
    assert result.code == 0, result.stderr
    assert sources_of(second) == sources_of(first)
    wanted = {slug: title for slug, title in categories_of(first).items()
              if any(c == slug for c, _ in sources_of(first).values())}
    assert {k: v for k, v in categories_of(second).items() if k != "misc"} == wanted
    assert slugify("A股") in wanted and "tech-news" in wanted and "uncategorized" in wanted
    # And back: the second config's export imported into the first adds nothing.
    back = tmp_path / "back.opml"
    assert run_cli("export-opml", "-o", str(back), config=second).code == 0
    again = run_cli("import-opml", str(back), config=first)
    assert again.code == 0 and "Nothing to import." in again.stdout


def test_export_uses_polled_titles_and_home_pages(feed_server: FeedServer,
                                                  write_config: Callable[..., Path],
                                                  tmp_path: Path) -> None:
    """Unnamed sources are exported with the feed's own title and home page once polled."""
    feed_server.set("/a.xml", fixture_route("rss2_utf8.xml"))
    feed_server.set("/b.xml", fixture_route("atom_utf8.xml"))
    config = write_config([SourceSpec(feed_server.url("/a.xml")),
                           SourceSpec(feed_server.url("/b.xml"), "other",
                                      extra="    name: 基金 (自定)")])
    before = read_opml(run_cli("export-opml", config=config).stdout.encode())
    assert [f.title for f in before.feeds] == [feed_server.url("/a.xml"), "基金 (自定)"]
    assert run_cli("poll", config=config).code == 0
    out = tmp_path / "out" / "subs.opml"
    out.parent.mkdir()
    result = run_cli("export-opml", "--output", str(out), config=config)
    assert result.code == 0 and "wrote 2 sources in 2 categories" in result.stderr
    doc = read_opml(out.read_bytes())
    assert [(f.folders, f.title) for f in doc.feeds] == [
        (("证券时报网新闻",), "证券时报网 要闻"), (("其他财经",), "基金 (自定)")]
    assert doc.feeds[0].html_url and doc.feeds[0].html_url.startswith("http")
    only = read_opml(run_cli("export-opml", "--category", "other", config=config).stdout.encode())
    assert [f.xml_url for f in only.feeds] == [feed_server.url("/b.xml")]
    assert run_cli("export-opml", "--category", "nope", config=config).code == 2
