"""``feedhub preview``: what a source would give, before it is added."""

from __future__ import annotations

import html
import re

import click

from feedhub import operations
from feedhub.cli.common import config_of, entries_text, handles_errors, run
from feedhub.selectors import FullText, ScrapeRules, compile_selector

#: Characters of each entry's text shown.
TEXT_CHARS = 200
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@click.command("preview")
@click.argument("url")
@click.option("--scrape-item", metavar="CSS", help="Read URL as an HTML page: each match of "
              "this selector is an entry (with --scrape-title and --scrape-link).")
@click.option("--scrape-title", metavar="CSS", help="Within an item: the title's element.")
@click.option("--scrape-link", metavar="CSS@ATTR", help="Within an item: the link, e.g. a@href.")
@click.option("--scrape-date", metavar="CSS", help="Within an item: the date's element.")
@click.option("--scrape-summary", metavar="CSS", help="Within an item: the summary's element.")
@click.option("--full-text", is_flag=True, help="Also fetch each shown entry's link and "
              "extract its article (as full_text: true does).")
@click.option("--full-text-selector", metavar="CSS", help="The article's element on each "
              "entry's page (implies --full-text).")
@click.option("--encoding", metavar="CHARSET", help="Read it in this charset, e.g. gb18030.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="How many entries to show.")
@click.pass_context
@handles_errors
def preview_command(ctx: click.Context, url: str, scrape_item: str | None,
                    scrape_title: str | None, scrape_link: str | None, scrape_date: str | None,
                    scrape_summary: str | None, full_text: bool, full_text_selector: str | None,
                    encoding: str | None, limit: int) -> None:
    """Show the entries a source would give (titles, links, dates, text); store nothing.

    URL is fetched and read as a poll would: as a feed, or with the --scrape-*
    selectors (the keys of a source's scrape: in feeds.yaml) as an HTML page.
    A URL already in feeds.yaml is read with its own scrape: and encoding:
    unless options are given. With --full-text, the text shown is the article
    taken off each entry's page.
    """
    config = config_of(ctx)
    source = config.source(config.expand(url))
    selectors = {"item": scrape_item, "title": scrape_title, "link": scrape_link,
                 "date": scrape_date, "summary": scrape_summary}
    rules = source.scrape if source else None
    if any(selectors.values()):
        rules = _rules(selectors)
    if encoding is None and source is not None:
        encoding = source.encoding
    article = source.full_text if source else None
    if full_text or full_text_selector:
        article = _full_text(full_text_selector)
    feed, note = run(operations.preview(config, config.expand(url), scrape=rules,
                                        encoding=encoding, full_text=article, limit=limit))
    tz = config.site.timezone
    click.echo(click.style(feed.title or "(untitled)", bold=True)
               + f" — {url} ({entries_text(len(feed.entries))})")
    for entry in feed.entries[:limit]:
        click.echo(f"{entry.published.astimezone(tz):%Y-%m-%d %H:%M}  {entry.title}")
        click.echo(f"    {entry.link or '(no link)'}")
        if text := _text(entry.content_html):
            click.echo(f"    {text}")
    if note:
        click.echo(note, err=True)


def _rules(selectors: dict[str, str | None]) -> ScrapeRules:
    missing = [k for k in ("item", "title", "link") if not selectors[k]]
    if missing:
        raise click.UsageError("reading a page needs --scrape-item, --scrape-title and "
                               f"--scrape-link (missing: {', '.join(missing)})")
    compiled = {}
    for key, value in selectors.items():
        if value is None:
            continue
        try:
            compiled[key] = compile_selector(value)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint=f"--scrape-{key}") from None
    return ScrapeRules(**compiled)


def _full_text(selector: str | None) -> FullText:
    try:
        return FullText(selector=compile_selector(selector) if selector else None)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--full-text-selector") from None


def _text(content_html: str) -> str:
    """The first characters of an entry's text, its markup dropped."""
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", content_html))).strip()
    return text[:TEXT_CHARS] + ("…" if len(text) > TEXT_CHARS else "")


COMMANDS = (preview_command,)
