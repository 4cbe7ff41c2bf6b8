"""Webhooks: new entries POSTed to receivers on 127.0.0.1, signed, retried, kept across restarts.

The receiver is a real HTTP server that answers 503 to the first deliveries (a receiver
not up yet) and then accepts; it checks the ``X-Feedhub-Signature`` of each body. The
hub is the real CLI and the real daemon on a real SQLite file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

from feedhub.publish.webhooks import retry_at, signature
from tests.conftest import SourceSpec, run_cli
from tests.daemonproc import DaemonProcess
from tests.feedserver import FeedServer, Request, Route

SECRET = "s3cret-令牌"
FILTERS = "    exclude: ['title:第2条']\n    rewrite: [{title: '^要闻', to: ''}]\n"
HOOK = "/hook"


def news_feed(numbers: range) -> Route:
    """RSS with items numbered ``numbers``; its ETag changes with them."""
    items = "".join(
        f"<item><title>{escape(f'要闻第{n}条')}</title><link>http://127.0.0.1/news/{n}.html</link>"
        f"<guid>http://127.0.0.1/news/{n}.html</guid>"
        f"<pubDate>{format_datetime(datetime(2022, 5, 6, 7, n, tzinfo=UTC))}</pubDate>"
        f"<description>第{n}条</description></item>" for n in numbers)
    body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>要闻</title><link>http://127.0.0.1/</link>{items}</channel></rss>").encode()
    return Route(body=body, etag=f'"{numbers.start}-{numbers.stop}"')


def with_webhooks(config: Path, hooks: str) -> Path:
    """Append a ``notify:`` section to a written feeds.yaml."""
    config.write_text(config.read_text(encoding="utf-8") + "notify:\n  webhooks:\n" + hooks,
                      encoding="utf-8")
    return config


def hook_yaml(url: str, *, secret: str | None = SECRET, categories: str = "") -> str:
    text = f"    - url: {url}\n"
    if secret:
        text += f'      secret: "{secret}"\n'
    if categories:
        text += f"      categories: [{categories}]\n"
    return text


def verified(request: Request) -> dict[str, Any]:
    """The JSON body of a delivery, after checking its signature as a receiver would."""
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-feedhub-signature"], expected)
    assert request.headers["content-type"].startswith("application/json")
    data: dict[str, Any] = json.loads(request.body)
    return data


def posts(server: FeedServer, path: str = HOOK) -> list[Request]:
    return [r for r in server.requests(path) if r.method == "POST"]


def test_signature_and_backoff_schedule() -> None:
    body = b'{"category": "zhengquanshibaowang"}'
    assert signature("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature("k", body) != signature("k2", body)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    waits = [(retry_at(now, n) or now) - now for n in range(1, 17)]
    assert [w.total_seconds() for w in waits[:4]] == [1, 2, 4, 8]
    assert max(waits).total_seconds() == 3600
    assert retry_at(now, 16) is None  # given up


def test_poll_posts_new_entries_once_signed_and_per_category(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """``feedhub poll`` sends one signed document per webhook wanting the category, with the
    entries as republished (filtered, titles rewritten); a re-poll with nothing new sends
    nothing."""
    feed_server.set("/news.xml", news_feed(range(1, 4)))
    feed_server.set(HOOK, Route(body=b"ok", content_type="text/plain"))
    feed_server.set("/other-hook", Route(body=b"ok", content_type="text/plain"))
    config = with_webhooks(
        write_config([SourceSpec(feed_server.url("/news.xml"), extra=FILTERS)]),
        hook_yaml(feed_server.url(HOOK))
        + hook_yaml(feed_server.url("/other-hook"), secret=None, categories="other"))
    result = run_cli("poll", config=config)
    assert result.code == 0, result.stderr
    [delivery] = posts(feed_server)
    data = verified(delivery)
    assert data["category"] == "zhengquanshibaowang" and data["label"] == "证券时报网新闻"
    assert data["feed"] == "http://127.0.0.1:8080/feeds/zhengquanshibaowang.atom"
    assert sorted(e["title"] for e in data["entries"]) == ["第1条", "第3条"]  # 第2条 excluded
    first = next(e for e in data["entries"] if e["title"] == "第1条")
    assert first == {"id": "http://127.0.0.1/news/1.html", "title": "第1条",
                     "link": "http://127.0.0.1/news/1.html", "published": "2022-05-06T07:01:00Z",
                     "source": feed_server.url("/news.xml")}
    assert posts(feed_server, "/other-hook") == []  # wants only category "other"

    feed_server.set("/news.xml", news_feed(range(1, 5)))  # one new entry
    assert run_cli("poll", "--force", config=config).code == 0
    assert run_cli("poll", "--force", config=config).code == 0  # nothing new
    deliveries = posts(feed_server)
    assert len(deliveries) == 2
    assert [e["title"] for e in verified(deliveries[1])["entries"]] == ["第4条"]
    status = run_cli("status", config=config)
    assert f"webhook {feed_server.url(HOOK)}: nothing pending" in status.stdout


def test_daemon_retries_until_accepted_and_delivers_exactly_once(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """A receiver failing the first two deliveries gets the third, and nothing after;
    a later poll with a new entry is one more delivery."""
    feed_server.set("/news.xml", news_feed(range(1, 3)))
    feed_server.set(HOOK, Route(body=b"ok", content_type="text/plain", fail_first=2))
    config = with_webhooks(
        write_config([SourceSpec(feed_server.url("/news.xml"), extra="    interval: 1s")]),
        hook_yaml(feed_server.url(HOOK)))
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(posts(feed_server)) >= 3, timeout=30,
                        what="the third delivery attempt")
        time.sleep(4)  # longer than the next retry would wait: nothing more may come
        attempts = posts(feed_server)
        assert len(attempts) == 3, [r.time for r in attempts]
        assert len({r.body for r in attempts}) == 1  # the same document each time
        assert attempts[1].time - attempts[0].time >= 0.9  # backoff: 1 s, then 2 s
        assert attempts[2].time - attempts[1].time >= 1.9
        assert len(verified(attempts[2])["entries"]) == 2
        metrics = daemon.get("/metrics").text
        assert 'feedhub_webhook_deliveries_total{result="failed"} 2.0' in metrics
        assert 'feedhub_webhook_deliveries_total{result="delivered"} 1.0' in metrics
        assert "HTTP 503" in daemon.stderr

        feed_server.set("/news.xml", news_feed(range(1, 4)))
        daemon.wait_for(lambda: len(posts(feed_server)) >= 4, timeout=30,
                        what="the delivery of the new entry")
        time.sleep(2)
        assert len(posts(feed_server)) == 4
        assert [e["title"] for e in verified(posts(feed_server)[3])["entries"]] == ["要闻第3条"]
        assert daemon.stop() == 0


def test_queued_deliveries_survive_a_restart(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    """Deliveries a down receiver did not take are in the store: ``status`` shows them, and
    the next daemon sends them without polling again."""
    feed_server.set("/news.xml", news_feed(range(1, 3)))
    feed_server.set(HOOK, Route(body=b"down", status=503, content_type="text/plain"))
    config = with_webhooks(
        write_config([SourceSpec(feed_server.url("/news.xml"), extra="    interval: 1h")]),
        hook_yaml(feed_server.url(HOOK)))
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(posts(feed_server)) >= 2, timeout=30,
                        what="two failed delivery attempts")
        assert daemon.stop() == 0
    status = run_cli("status", config=config)
    assert status.code == 0, status.stderr
    assert f"webhook {feed_server.url(HOOK)}: 1 pending, 0 given up (last error: HTTP 503)" \
        in status.stdout
    failed = len(posts(feed_server))
    polls = len(feed_server.requests("/news.xml"))

    feed_server.set(HOOK, Route(body=b"ok", content_type="text/plain"))
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(posts(feed_server)) > failed, timeout=30,
                        what="the delivery after the restart")
        time.sleep(3)
        assert len(posts(feed_server)) == failed + 1
        assert len(verified(posts(feed_server)[-1])["entries"]) == 2
        assert len(feed_server.requests("/news.xml")) == polls  # not polled again
        assert daemon.stop() == 0
    assert f"webhook {feed_server.url(HOOK)}: nothing pending" in \
        run_cli("status", config=config).stdout


def test_a_hanging_receiver_does_not_hold_up_polling(
        feed_server: FeedServer, write_config: Callable[..., Path]) -> None:
    feed_server.set("/news.xml", news_feed(range(1, 3)))
    feed_server.set(HOOK, Route(body=b"ok", content_type="text/plain", delay=8.0))
    config = with_webhooks(
        write_config([SourceSpec(feed_server.url("/news.xml"), extra="    interval: 1s")]),
        hook_yaml(feed_server.url(HOOK)))
    with DaemonProcess(config) as daemon:
        daemon.wait_ready()
        daemon.wait_for(lambda: len(posts(feed_server)) >= 1, timeout=20,
                        what="the delivery to start")
        started = time.monotonic()
        polls = len(feed_server.requests("/news.xml"))
        daemon.wait_for(lambda: len(feed_server.requests("/news.xml")) >= polls + 3, timeout=6,
                        what="polls while the receiver hangs")
        assert time.monotonic() - started < 6
        assert daemon.stop() == 0


def test_webhook_categories_must_exist(write_config: Callable[..., Path],
                                       feed_server: FeedServer) -> None:
    config = with_webhooks(write_config([SourceSpec(feed_server.url("/news.xml"))]),
                           hook_yaml("http://127.0.0.1:9/hook", categories="zhengquanshibaowang, nope"))
    result = run_cli("check", config=config)
    assert result.code != 0
    line = config.read_text(encoding="utf-8").splitlines().index(
        "      categories: [zhengquanshibaowang, nope]") + 1
    assert f"feeds.yaml:{line}" in result.stderr + result.stdout
    assert "notify.webhooks[0].categories[1]" in result.stderr + result.stdout
    assert "'nope' is not defined" in result.stderr + result.stdout


def test_webhook_url_must_be_http(write_config: Callable[..., Path],
                                  feed_server: FeedServer) -> None:
    config = with_webhooks(write_config([SourceSpec(feed_server.url("/news.xml"))]),
                           "    - url: ftp://127.0.0.1/hook\n")
    result = run_cli("check", config=config)
    assert result.code != 0
    assert "notify.webhooks[0].url" in result.stderr + result.stdout
