"""Tests for feeds.yaml loading and validation (feedhub.config) and `feedhub check`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from feedhub import config as config_module
from feedhub.config import Config, load_config
from feedhub.errors import ConfigError, ConfigIssue
from tests.conftest import SourceSpec, run_cli

REPO = Path(__file__).resolve().parents[1]

# Line numbers below are 1-based and refer to this text.
BASE = """\
site:
  title: 财经新闻聚合
  base_url: http://127.0.0.1:8080/
categories:
  news:
    title: 新闻
sources:
  - url: http://a.example/x.xml
    category: news
"""
# line 8: "  - url: …", line 9: "    category: news"; appended lines start at 10.


def _write(tmp_path: Path, text: str, name: str = "feeds.yaml") -> Path:
    """Write ``text`` as a config file and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _issues(tmp_path: Path, text: str) -> tuple[ConfigIssue, ...]:
    """The issues ``load_config`` reports for ``text`` (it must fail)."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.issues


def _one(tmp_path: Path, text: str) -> ConfigIssue:
    """The single issue reported for ``text``."""
    issues = _issues(tmp_path, text)
    assert len(issues) == 1, issues
    return issues[0]


def _assert_located(issue: ConfigIssue, path: Path, line: int, field: str) -> None:
    """The issue names the file, the line and the field, and has a hint."""
    assert issue.file == str(path)
    assert issue.line == line
    assert issue.field == field
    assert issue.hint, "every issue should say how to fix it"
    assert f"{path}:{line}: {field}:" in str(issue)


# --- valid files --------------------------------------------------------------------


def test_valid_file_resolves_defaults(write_config: Callable[..., Path], tmp_path: Path) -> None:
    """A valid file loads; unset fields take the defaults, data_dir is relative to the file."""
    path = write_config([SourceSpec("http://127.0.0.1:9/a.xml"),
                         SourceSpec("http://127.0.0.1:9/b.xml", category="other",
                                    extra="    interval: 10m\n    timezone: UTC\n"
                                          "    encoding: GB2312\n    name: 乙")])
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.path == path
    assert config.site.title == "财经新闻聚合"
    assert config.site.base_url == "http://127.0.0.1:8080/"
    assert config.site.timezone == ZoneInfo("Asia/Shanghai")
    assert config.site.data_dir == tmp_path / "data"
    assert config.store_path == tmp_path / "data" / "feedhub.sqlite3"
    assert config.listen_host == "127.0.0.1"
    assert config.listen_port == 8080
    assert config.max_entries == 50
    assert list(config.categories) == ["zhengquanshibaowang", "other"]
    assert config.categories["zhengquanshibaowang"].title == "证券时报网新闻"
    assert config.categories["other"].description == ""
    a, b = config.sources
    assert (a.url, a.category, a.name, a.encoding) == ("http://127.0.0.1:9/a.xml",
                                                       "zhengquanshibaowang", None, None)
    assert a.schedule.default == timedelta(minutes=15)
    assert a.timezone == ZoneInfo("Asia/Shanghai")
    assert (b.category, b.name, b.schedule.default) == ("other", "乙", timedelta(minutes=10))
    assert b.timezone == ZoneInfo("UTC")
    assert b.encoding == "gb2312"
    assert config.source("http://127.0.0.1:9/b.xml") is b
    assert config.sources_in("other") == (b,)


def test_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    """Without server:, defaults: or site.timezone the documented defaults apply."""
    config = load_config(_write(tmp_path, BASE))
    assert config.site.timezone == ZoneInfo("Asia/Shanghai")
    assert config.sources[0].schedule.default == timedelta(minutes=15)
    assert config.site.data_dir == tmp_path / "data"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 8080)
    assert config.site.rsshub == "https://rsshub.app/"


# Valid files in the forms a fast loader could read differently from the round-trip one.
LOADER_CASES = {
    "plain": BASE,
    "quoted, block and typed scalars": BASE.replace("    title: 新闻\n", """\
    title: "新闻 #1"
    description: |
      第一行
      第二行
    include: [1_000, 0x1F, 1.50, 'yes', "on"]
    exclude: [~]
""").replace("- url: http://a.example/x.xml", "- url: 'http://a.example/x.xml'"),
    "anchors": BASE + "  - url: http://a.example/y.xml\n    category: &cat news\n"
                      "  - url: http://a.example/z.xml\n    category: *cat\n",
    "merge keys order keys": BASE.replace("categories:\n", """\
categories:
  <<: {more: {title: 合并}}
""").replace("category: news", "category: more"),
    "a YAML 1.1 directive": "%YAML 1.1\n---\n" + BASE + "    name: on\n",
    "a date in a string field": BASE + "    name: 2024-01-01\n",
}


@pytest.mark.parametrize("text", LOADER_CASES.values(), ids=LOADER_CASES.keys())
def test_fast_loader_reads_like_the_round_trip_loader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """A file loads to the same Config (or the same located errors) with and without
    the fast path, which only the round-trip loader's tree could be wrong about."""
    path = _write(tmp_path, text)

    def load() -> Config | tuple[ConfigIssue, ...]:
        try:
            return load_config(path)
        except ConfigError as e:
            return e.issues

    fast = load()
    monkeypatch.setattr(config_module.loader, "fast_data", lambda text: None)
    assert fast == load()


def test_fast_path_reads_plain_files_and_leaves_the_rest() -> None:
    """Plain files skip the round-trip parser; anything it might read differently does not."""
    assert config_module.loader.fast_data(LOADER_CASES["quoted, block and typed scalars"]) is not None
    assert config_module.loader.fast_data(LOADER_CASES["anchors"]) is not None
    for case in ("merge keys order keys", "a YAML 1.1 directive", "a date in a string field"):
        assert config_module.loader.fast_data(LOADER_CASES[case]) is None, case
    assert config_module.loader.fast_data(BASE + "    name: !custom x\n") is None
    assert config_module.loader.fast_data(BASE + "  - [unclosed\n") is None


def test_fast_path_errors_still_name_file_and_line(tmp_path: Path) -> None:
    """A file the fast loader reads but that fails validation is reported with its lines."""
    text = BASE + "    interval: 15 minutes\n  - url: http://a.example/x.xml\n    category: news\n"
    issues = _issues(tmp_path, text)
    path = tmp_path / "feeds.yaml"
    assert [(i.line, i.field) for i in issues] == [(10, "sources[0].interval"),
                                                   (11, "sources[1].url")]
    assert all(str(i).startswith(f"{path}:{i.line}: ") for i in issues)


def test_data_dir_relative_to_file_not_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative data_dir is resolved against the config file's folder, whatever the cwd."""
    conf = tmp_path / "etc"
    conf.mkdir()
    _write(conf, BASE.replace("  base_url:", "  data_dir: var/hub\n  base_url:"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc/feeds.yaml"))
    assert config.site.data_dir == conf.resolve() / "var" / "hub"
    monkeypatch.chdir(elsewhere)
    assert load_config(conf / "feeds.yaml").site.data_dir == conf.resolve() / "var" / "hub"


def test_absolute_data_dir_kept(tmp_path: Path) -> None:
    """An absolute data_dir is used as it is."""
    target = tmp_path / "abs-data"
    config = load_config(_write(tmp_path, BASE.replace("  base_url:", f"  data_dir: {target}\n  base_url:")))
    assert config.site.data_dir == target


def test_rsshub_routes_expand_against_site_rsshub(tmp_path: Path) -> None:
    """``rsshub:/route`` sources expand against site.rsshub (slash added once)."""
    text = BASE.replace("  base_url: http://127.0.0.1:8080/\n",
                        "  base_url: http://127.0.0.1:8080\n  rsshub: http://127.0.0.1:1200\n")
    text += "  - url: rsshub:/stcn/yw\n    category: news\n  - url: rsshub:stcn/kx\n    category: news\n"
    config = load_config(_write(tmp_path, text))
    assert config.site.base_url == "http://127.0.0.1:8080/"
    assert config.site.rsshub == "http://127.0.0.1:1200/"
    assert [s.url for s in config.sources[1:]] == ["http://127.0.0.1:1200/stcn/yw",
                                                   "http://127.0.0.1:1200/stcn/kx"]


def test_rsshub_default_instance(tmp_path: Path) -> None:
    """Without site.rsshub, routes expand against the public instance."""
    config = load_config(_write(tmp_path, BASE + "  - url: rsshub:/cls/telegraph\n    category: news\n"))
    assert config.sources[1].url == "https://rsshub.app/cls/telegraph"


def test_site_timezone_applies_to_sources(tmp_path: Path) -> None:
    """A source without its own timezone inherits the site's."""
    text = BASE.replace("  base_url:", "  timezone: Asia/Taipei\n  base_url:")
    config = load_config(_write(tmp_path, text))
    assert config.site.timezone == ZoneInfo("Asia/Taipei")
    assert config.sources[0].timezone == ZoneInfo("Asia/Taipei")


# --- errors: each names file, line, field and gives a hint ------------------------------


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        pytest.param(BASE + "bogus: 1\n", 10, "bogus", ["unknown key 'bogus'", "site"],
                     id="unknown-top-level-key"),
        pytest.param(BASE.replace("  title: 财经新闻聚合\n", "  title: 财经新闻聚合\n  colour: red\n"),
                     3, "site.colour", ["unknown key 'colour'", "base_url"], id="unknown-site-key"),
        pytest.param(BASE + "    intervall: 5m\n", 10, "sources[0].intervall",
                     ["unknown key 'intervall'", "interval"], id="unknown-source-key"),
        pytest.param(BASE.replace("category: news", "category: nope"), 9, "sources[0].category",
                     ["'nope' is not defined", "news"], id="undefined-category"),
        pytest.param(BASE.replace("http://a.example/x.xml", "ftp://a.example/x.xml"), 8, "sources[0].url",
                     ["invalid URL", "http://"], id="ftp-url"),
        pytest.param(BASE.replace("http://a.example/x.xml", "/feeds/x.xml"), 8, "sources[0].url",
                     ["invalid URL", "absolute"], id="relative-url"),
        pytest.param(BASE.replace("http://a.example/x.xml", "'javascript:alert(1)'"), 8, "sources[0].url",
                     ["invalid URL"], id="javascript-url"),
        pytest.param(BASE.replace("  base_url: http://127.0.0.1:8080/", "  base_url: 127.0.0.1:8080"),
                     3, "site.base_url", ["invalid URL"], id="site-base-url-without-scheme"),
        pytest.param(BASE + "    interval: 15x\n", 10, "sources[0].interval",
                     ["invalid duration '15x'", "15m"], id="duration-bad-unit"),
        pytest.param(BASE + "    interval: 10\n", 10, "sources[0].interval",
                     ["invalid duration 10", "30s"], id="duration-no-unit"),
        pytest.param(BASE + "    interval: 0s\n", 10, "sources[0].interval",
                     ["too short"], id="duration-zero"),
        pytest.param(BASE + "defaults:\n  interval: 1m1\n", 11, "defaults.interval",
                     ["invalid duration"], id="default-duration"),
        pytest.param(BASE + "    timezone: Mars/Olympus\n", 10, "sources[0].timezone",
                     ["unknown time zone 'Mars/Olympus'", "Asia/Shanghai"], id="unknown-timezone"),
        pytest.param(BASE.replace("  base_url:", "  timezone: Beijing\n  base_url:"), 3, "site.timezone",
                     ["unknown time zone 'Beijing'"], id="unknown-site-timezone"),
        pytest.param(BASE + "    encoding: klingon\n", 10, "sources[0].encoding",
                     ["unknown encoding 'klingon'", "gb18030"], id="unknown-encoding"),
        pytest.param(BASE + "  - url: http://a.example/x.xml\n    category: news\n", 10, "sources[1].url",
                     ["duplicate source http://a.example/x.xml", "sources[0]"], id="duplicate-source"),
        pytest.param(BASE + "  - url: rsshub:/x\n    category: news\n"
                            "  - url: https://rsshub.app/x\n    category: news\n", 12, "sources[2].url",
                     ["duplicate source https://rsshub.app/x"], id="duplicate-after-rsshub-expansion"),
        pytest.param(BASE.replace("  news:\n", "  all:\n").replace("category: news", "category: all"),
                     5, "categories.all", ["invalid category slug 'all'"], id="reserved-slug-all"),
        pytest.param(BASE.replace("  news:\n", "  q:\n").replace("category: news", "category: q"),
                     5, "categories.q", ["invalid category slug 'q'"], id="reserved-slug-q"),
        pytest.param(BASE.replace("  news:\n", "  News Feed:\n").replace("category: news",
                                                                          "category: News Feed"),
                     5, "categories.News Feed", ["invalid category slug"], id="invalid-slug"),
        pytest.param(BASE.replace("  news:\n", "  ../etc:\n").replace("category: news", "category: ../etc"),
                     5, "categories.../etc", ["invalid category slug"], id="path-traversal-slug"),
        pytest.param(BASE + "server:\n  listen: nowhere\n", 11, "server.listen",
                     ["invalid listen address"], id="bad-listen"),
        pytest.param(BASE.replace("    title: 新闻\n", "    description: 无标题\n"), 5,
                     "categories.news.title", ["required field is missing"], id="category-without-title"),
    ],
)
def test_error_names_file_line_field_and_hint(tmp_path: Path, text: str, line: int, field: str,
                                              words: list[str]) -> None:
    """Each invalid setting is one issue located at its line, with a hint."""
    issue = _one(tmp_path, text)
    _assert_located(issue, tmp_path / "feeds.yaml", line, field)
    for word in words:
        assert word in str(issue)


def test_invalid_yaml_syntax(tmp_path: Path) -> None:
    """Broken YAML is one issue at the line where the parser stopped."""
    issue = _one(tmp_path, BASE.replace("    title: 新闻\n", "    title: [新闻\n"))
    assert issue.file == str(tmp_path / "feeds.yaml")
    assert issue.line is not None and issue.line >= 6
    assert "not valid YAML" in issue.message
    assert issue.hint


def test_tab_indentation_is_a_yaml_error(tmp_path: Path) -> None:
    """A tab in the indentation is reported with its line, not a traceback."""
    issue = _one(tmp_path, "site:\n\ttitle: x\n")
    assert issue.line == 2
    assert "not valid YAML" in issue.message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    """A key given twice in one mapping is reported at the second occurrence."""
    text = BASE.replace("  title: 财经新闻聚合\n", "  title: 财经新闻聚合\n  title: 又一个\n")
    issue = _one(tmp_path, text)
    assert issue.line == 3
    assert "duplicate key" in issue.message


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is an error naming the file, with a hint."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (issue,) = info.value.issues
    assert issue.file == str(path)
    assert "not found" in issue.message
    assert "FEEDHUB_CONFIG" in issue.hint or "--config" in issue.hint


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "# only a comment\n"],
                         ids=["list", "scalar", "empty", "comment-only"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    """A file that is not a mapping is one issue saying what is expected."""
    issue = _one(tmp_path, text)
    assert issue.file == str(tmp_path / "feeds.yaml")
    assert issue.line == 1
    assert "mapping" in issue.message
    assert issue.hint


def test_missing_required_sections(tmp_path: Path) -> None:
    """A file without site: and categories: names both."""
    issues = _issues(tmp_path, "sources: []\n")
    assert {i.field for i in issues} == {"site", "categories"}
    assert all("required" in i.message for i in issues)


def test_not_utf8(tmp_path: Path) -> None:
    """A file in another encoding is a ConfigError, not a UnicodeDecodeError."""
    path = tmp_path / "feeds.yaml"
    path.write_bytes(BASE.encode("gbk"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "UTF-8" in str(info.value)


def test_several_errors_reported_together(tmp_path: Path) -> None:
    """Problems in different places are all reported in one go, in file order."""
    text = (BASE.replace("http://a.example/x.xml", "ftp://a.example/x.xml")
            + "    interval: 15x\n"        # 10
            + "    timezone: Nowhere/X\n"  # 11
            + "bogus: 1\n")                # 12
    issues = _issues(tmp_path, text)
    assert [(i.line, i.field) for i in issues] == [
        (8, "sources[0].url"), (10, "sources[0].interval"), (11, "sources[0].timezone"), (12, "bogus")]
    message = str(ConfigError(list(issues)))
    assert message.count(str(tmp_path / "feeds.yaml")) == 4


def test_several_cross_reference_errors_together(tmp_path: Path) -> None:
    """Undefined category, duplicate source and bad slug are reported together."""
    text = (BASE.replace("  news:\n", "  news:\n    title: 新闻\n  All:\n")
            .replace("category: news", "category: nope", 1)
            + "  - url: http://a.example/x.xml\n    category: news\n")
    issues = _issues(tmp_path, text)
    assert {i.field for i in issues} == {"categories.All", "sources[0].category", "sources[1].url"}


def test_schema_and_cross_reference_errors_together(tmp_path: Path) -> None:
    """A bad URL in one source does not hide an undefined category in another."""
    text = (BASE.replace("http://a.example/x.xml", "ftp://a.example/x.xml")
            + "  - url: http://b.example/y.xml\n    category: nope\n")  # 10, 11
    issues = _issues(tmp_path, text)
    assert [(i.line, i.field) for i in issues] == [(8, "sources[0].url"), (11, "sources[1].category")]


def test_zero_interval_refused(tmp_path: Path) -> None:
    """An interval of 0s is refused with a located hint (1s is the floor)."""
    issue = _one(tmp_path, BASE + "    interval: 0s\n")
    _assert_located(issue, tmp_path / "feeds.yaml", 10, "sources[0].interval")
    assert "too short" in issue.message


def test_site_base_url_cannot_be_rsshub_route(tmp_path: Path) -> None:
    """``rsshub:`` is a source shorthand; site.base_url must be an http(s) URL."""
    issue = _one(tmp_path, BASE.replace("base_url: http://127.0.0.1:8080/", "base_url: rsshub:/x"))
    _assert_located(issue, tmp_path / "feeds.yaml", 3, "site.base_url")


def test_huge_duration_is_a_config_error(tmp_path: Path) -> None:
    """A duration too large for timedelta is a located error, not an OverflowError."""
    issue = _one(tmp_path, BASE + "    interval: 99999999999d\n")
    _assert_located(issue, tmp_path / "feeds.yaml", 10, "sources[0].interval")


# --- the command line ------------------------------------------------------------------


def test_cli_check_valid(write_config: Callable[..., Path]) -> None:
    """``feedhub check`` on a valid file exits 0 with a summary."""
    path = write_config([SourceSpec("http://127.0.0.1:9/a.xml"), SourceSpec("http://127.0.0.1:9/b.xml")])
    result = run_cli("check", config=path)
    assert result.code == 0, result.stderr
    assert "2 categories" in result.stdout
    assert "2 sources" in result.stdout
    assert result.stderr == ""


def test_cli_check_broken(tmp_path: Path) -> None:
    """``feedhub check`` on a broken file exits 2 with file:line errors and no traceback."""
    path = _write(tmp_path, BASE.replace("category: news", "category: nope") + "    interval: 15x\n")
    result = run_cli("check", config=path)
    assert result.code == 2
    assert f"{path}:10" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_check_missing_file(tmp_path: Path) -> None:
    """A missing config file is a usage error (exit 2), not a traceback."""
    result = run_cli("check", config=tmp_path / "absent.yaml")
    assert result.code == 2
    assert "absent.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def _cli_env(**extra: str) -> dict[str, str]:
    """The environment for a hand-made CLI subprocess."""
    env = {k: v for k, v in os.environ.items() if k != "FEEDHUB_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def test_cli_feedhub_config_env(tmp_path: Path) -> None:
    """FEEDHUB_CONFIG picks the file when --config is absent."""
    good = _write(tmp_path, BASE, "good.yaml")
    _write(tmp_path, "not: [valid\n")  # ./feeds.yaml in cwd would fail
    proc = subprocess.run([sys.executable, "-m", "feedhub", "check"], capture_output=True, text=True,
                          cwd=tmp_path, env=_cli_env(FEEDHUB_CONFIG=str(good)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "good.yaml" in proc.stdout
    assert "1 categories" in proc.stdout or "1 category" in proc.stdout


def test_cli_default_path_is_cwd_feeds_yaml(tmp_path: Path) -> None:
    """Without --config or FEEDHUB_CONFIG, ./feeds.yaml is read."""
    _write(tmp_path, BASE.replace("category: news", "category: nope"))
    proc = subprocess.run([sys.executable, "-m", "feedhub", "check"], capture_output=True, text=True,
                          cwd=tmp_path, env=_cli_env(), timeout=60)
    assert proc.returncode == 2
    assert "feeds.yaml:9" in proc.stderr
    assert "Traceback" not in proc.stderr
