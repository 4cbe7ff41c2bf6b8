"""``feedhub export jekyll``: the golden seed, byte for byte, and idempotent re-runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import SEED, SourceSpec, fixture_route, run_cli, seed_required
from tests.feedserver import FeedServer


def polled_seed(feed_server: FeedServer, write_config: Callable[..., Path]) -> Path:
    feed_server.set("/seed.xml", fixture_route("seed.xml", etag='"seed"'))
    feed_server.set("/other.xml", fixture_route("atom_utf8.xml"))
    config = write_config([SourceSpec(feed_server.url("/seed.xml")),
                           SourceSpec(feed_server.url("/other.xml"), category="other")],
                          base_url="https://finews.withounder.com/")
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    return config


def test_seed_reproduced_byte_for_byte(feed_server: FeedServer,
                                       write_config: Callable[..., Path], tmp_path: Path) -> None:
    seed_required()
    config = polled_seed(feed_server, write_config)
    out = tmp_path / "site"
    result = run_cli("export", "jekyll", str(out), "--category", "zhengquanshibaowang",
                     config=config)
    assert result.code == 0, result.stderr
    posts = sorted((out / "_posts").iterdir())
    assert [p.name[:11] for p in posts] == ["2022-05-06-"]
    assert posts[0].read_bytes() == SEED.read_bytes()

    again = run_cli("export", "jekyll", str(out), "--category", "zhengquanshibaowang",
                    config=config)
    assert again.code == 0 and "0 posts written, 1 unchanged" in again.stdout
    assert posts[0].read_bytes() == SEED.read_bytes()


def test_all_categories_since_and_errors(feed_server: FeedServer,
                                         write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = polled_seed(feed_server, write_config)
    out = tmp_path / "site"
    result = run_cli("export", "jekyll", str(out), config=config)
    assert result.code == 0, result.stderr
    posts = list((out / "_posts").iterdir())
    assert len(posts) == 4  # the seed + the three Atom fixture entries
    other = [p.read_text(encoding="utf-8") for p in posts if "categories: other" in
             p.read_text(encoding="utf-8")]
    assert len(other) == 3 and all("tags: 其他财经" in text for text in other)
    assert all("[返回其他财经](//finews.withounder.com/category/other.html)" in t for t in other)

    later = run_cli("export", "jekyll", str(tmp_path / "later"), "--since", "2030-01-01",
                    config=config)
    assert later.code == 0 and "0 posts written" in later.stdout

    bad = run_cli("export", "jekyll", str(out), "--category", "nope", config=config)
    assert bad.code == 2 and "no category 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_yaml_title_escaping() -> None:
    from feedhub.publish.jekyll import _yaml_string

    assert _yaml_string('他说"你好"\\n') == '"他说\\"你好\\"\\\\n"'
    assert _yaml_string("a\nb\tc") == '"a\\nb\\tc"'
