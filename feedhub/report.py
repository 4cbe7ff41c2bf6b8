"""What the operator sees in a terminal: status tables, a source's history, poll progress.

Rendering only, with Rich: it takes plain values (the configuration, source
states, poll outcomes) and imports no stage. On a terminal tables are coloured
and fitted to its width; when standard output is not a terminal the same
tables come out as plain text, one row per line, nothing cut or coloured, so
scripts can ``grep`` them (``--json`` is the stable interface for scripts).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from io import StringIO
from typing import IO, Any
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from feedhub.config import Source
from feedhub.model import PollOutcome, PollStatus, SourceState
from feedhub.policy import DAY_NAMES, Schedule
from feedhub.store.base import PollRecord
from feedhub.summary import FAILED, LABELS, is_terminal, poll_total

_STYLES = {
    PollStatus.OK: "green", PollStatus.NOT_MODIFIED: "green", PollStatus.UNCHANGED: "green",
    PollStatus.GONE: "magenta", PollStatus.RATE_LIMITED: "yellow", PollStatus.SKIPPED: "dim",
    PollStatus.ERROR: "red"}
#: Whole-row highlight of sources that need the operator.
_ROW_STYLES = {PollStatus.ERROR: "red", PollStatus.RATE_LIMITED: "yellow", PollStatus.GONE: "magenta"}
#: Wide enough that no plain-text row is ever wrapped.
_PLAIN_WIDTH = 10_000


def make_console(stream: IO[str] | None = None) -> Console:
    """A console for ``stream``: coloured on a terminal, plain text otherwise."""
    stream = stream or sys.stdout
    if is_terminal(stream):
        return Console(file=stream, highlight=False)
    return Console(file=stream, force_terminal=False, no_color=True, highlight=False,
                   width=_PLAIN_WIDTH, emoji=False)


def print_plain(console: Console, renderable: Any) -> None:
    """Print on ``console``; in plain mode without the trailing spaces Rich pads rows with."""
    if console.is_terminal:
        console.print(renderable)
        return
    buffer = StringIO()
    Console(file=buffer, force_terminal=False, no_color=True, highlight=False, width=_PLAIN_WIDTH,
            emoji=False).print(renderable)
    for line in buffer.getvalue().splitlines():
        console.file.write(line.rstrip() + "\n")


def relative(when: datetime | None, now: datetime) -> str:
    """``when`` as ``5m ago`` / ``in 2h``, or ``-``."""
    if when is None:
        return "-"
    seconds = int((now - when).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    text = (f"{seconds}s" if seconds < 120 else f"{seconds // 60}m" if seconds < 7200
            else f"{seconds // 3600}h" if seconds < 172800 else f"{seconds // 86400}d")
    return f"in {text}" if future else f"{text} ago"


def _status(value: str | None) -> PollStatus | None:
    try:
        return PollStatus(value) if value else None
    except ValueError:
        return None


def _result(status: PollStatus | None, http_status: int | None, raw: str | None = None) -> Text:
    if status is None:
        return Text(raw or "never polled", style="dim")
    text = Text(LABELS[status], style=_STYLES[status])
    if http_status:
        text.append(f" {http_status}", style="dim")
    return text


# --- feedhub status ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRow:
    """One configured source as ``feedhub status`` reports it."""

    source: Source
    state: SourceState | None
    entries: int
    new_24h: int
    #: Stored entries the filters keep out of the outputs, by the rule that drops them.
    filtered: Mapping[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        """The configured name, else the feed's own title once polled."""
        return self.source.name or (self.state.feed_title if self.state else None)

    @property
    def status(self) -> PollStatus | None:
        """The last poll's result (``None``: never polled)."""
        return _status(self.state.last_status) if self.state else None

    def error_text(self) -> str:
        """The error reason, and where a source moved permanently."""
        st = self.state
        if st is None:
            return ""
        parts = [st.error] if st.error else []
        if st.moved_to:
            parts.append(f"moved permanently to {st.moved_to}: update feeds.yaml")
        if st.active_url:
            parts.append(f"failed over to {st.active_url}")
        return "; ".join(parts)

    def next_poll_text(self, now: datetime) -> str:
        """When the next poll is due, relative to ``now``."""
        st = self.state
        if st is None or st.last_poll_at is None:
            return "soon"
        if st.next_poll_at is None:
            return "never"
        return "due" if st.next_poll_at <= now else relative(st.next_poll_at, now)

    def as_json(self) -> dict[str, Any]:
        """The row in ``status --json``'s stable schema (see docs/configuration.md)."""
        st = self.state

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "source": self.source.url, "category": self.source.category, "name": self.name,
            "status": st.last_status if st and st.last_status else "never_polled",
            "http_status": st.http_status if st else None,
            "last_poll": iso(st.last_poll_at) if st else None,
            "last_success": iso(st.last_success_at) if st else None,
            "next_poll": iso(st.next_poll_at) if st else None,
            "entries": self.entries,
            "new_24h": self.new_24h,
            "failures": st.failures if st else 0,
            "error": st.error if st else None,
            "moved_to": st.moved_to if st else None,
            "active_url": st.active_url if st else None,
            "filtered": sum(self.filtered.values()),
            "filtered_by": dict(self.filtered),
        }


def status_summary(rows: Sequence[StatusRow]) -> str:
    """``7 sources: 5 ok, 1 failing, 1 gone, 0 never polled``."""
    failing = sum(r.status in (PollStatus.ERROR, PollStatus.RATE_LIMITED) for r in rows)
    gone = sum(r.status is PollStatus.GONE for r in rows)
    never = sum(r.status is None for r in rows)
    ok = len(rows) - failing - gone - never
    return f"{len(rows)} sources: {ok} ok, {failing} failing, {gone} gone, {never} never polled"


#: Terminals at least this wide get the entries and error columns; narrower ones show the
#: error under the source instead, so no column is squeezed out.
WIDE = 150


def render_status(console: Console, rows: Sequence[StatusRow], now: datetime, title: str) -> None:
    """The ``feedhub status`` table: one row per source, failing and gone ones highlighted."""
    tty = console.is_terminal
    wide = not tty or console.width >= WIDE
    table = Table(title=title if tty else None, caption=status_summary(rows) if tty else None,
                  box=box.SIMPLE_HEAD if tty else None, header_style="bold", pad_edge=False,
                  caption_justify="left", title_justify="left")
    table.add_column("source", overflow="fold", no_wrap=not tty, min_width=24 if tty else None)
    table.add_column("category", overflow="fold", no_wrap=not tty)
    table.add_column("last poll", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("new 24h", justify="right", no_wrap=True)
    if wide:
        table.add_column("entries", justify="right", no_wrap=True)
    table.add_column("next poll", justify="right", no_wrap=True)
    if wide:
        table.add_column("error", overflow="fold", no_wrap=not tty, min_width=16 if tty else None)
    for row in rows:
        st = row.state
        style = _ROW_STYLES.get(row.status) if row.status else None
        source = Text(row.source.url, style="dim" if tty and row.name else "")
        if tty and row.name:
            source = Text.assemble((row.name, "bold"), "\n", source)
        if not wide and row.error_text():
            source.append("\n" + row.error_text(), style=style or "")
        cells: list[str | Text] = [
            source, row.source.category, relative(st.last_poll_at if st else None, now),
            _result(row.status, st.http_status if st else None, st.last_status if st else None),
            str(row.new_24h) if row.new_24h or st else "-"]
        if wide:
            dropped = sum(row.filtered.values())
            cells.append(f"{row.entries} ({dropped} filtered)" if dropped else str(row.entries))
        cells.append(row.next_poll_text(now))
        if wide:
            cells.append(row.error_text())
        table.add_row(*cells, style=style)
    print_plain(console, table)
    if not tty:
        console.file.write(status_summary(rows) + "\n")


def render_history(console: Console, row: StatusRow, history: Sequence[PollRecord], now: datetime,
                   tz: ZoneInfo) -> None:
    """``feedhub status URL``: the source's details, then its last polls, newest first."""
    st = row.state
    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold")
    details.add_column(overflow="fold")
    details.add_row("source", row.source.url)
    details.add_row("name", row.name or "-")
    details.add_row("category", row.source.category)
    details.add_row("interval", _schedule(row.source.schedule, now))
    details.add_row("last poll", _when(st.last_poll_at if st else None, now, tz))
    details.add_row("result", _result(row.status, st.http_status if st else None,
                                      st.last_status if st else None))
    details.add_row("last success", _when(st.last_success_at if st else None, now, tz))
    details.add_row("next poll", row.next_poll_text(now))
    details.add_row("entries", f"{row.entries} stored, {row.new_24h} new in the last 24 h")
    if row.filtered:
        details.add_row("filtered", "; ".join(f"{n} by {rule}"
                                              for rule, n in sorted(row.filtered.items())))
    if st and st.failures:
        details.add_row("failures", f"{st.failures} in a row")
    if row.error_text():
        details.add_row("error", Text(row.error_text(), style=_ROW_STYLES.get(row.status, "")
                                      if row.status else ""))
    if st and st.feed_link:
        details.add_row("home page", st.feed_link)
    print_plain(console, details)
    console.file.write("\n")
    if not history:
        console.file.write("no polls recorded yet\n")
        return
    tty = console.is_terminal
    title = f"last {len(history)} poll{'s' if len(history) != 1 else ''}"
    table = Table(title=title if tty else None, box=box.SIMPLE_HEAD if tty else None,
                  header_style="bold", pad_edge=False, title_justify="left")
    table.add_column("when", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("new", justify="right")
    table.add_column("updated", justify="right")
    table.add_column("error", overflow="fold", no_wrap=not tty)
    for poll in history:
        status = _status(poll.status)
        table.add_row(poll.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), relative(poll.at, now),
                      _result(status, poll.http_status, poll.status), str(poll.new),
                      str(poll.updated), poll.error or "",
                      style=_ROW_STYLES.get(status) if status else None)
    print_plain(console, table)


def _when(value: datetime | None, now: datetime, tz: ZoneInfo) -> str:
    if value is None:
        return "-"
    return f"{value.astimezone(tz):%Y-%m-%d %H:%M:%S %z} ({relative(value, now)})"


def _schedule(schedule: Schedule, now: datetime) -> str:
    """``30m``, or ``30m; 2m mon-fri 09:15-15:00 (Asia/Shanghai); now 2m``."""
    if not schedule.windows:
        return _duration(schedule.default)
    windows = "; ".join(f"{_duration(w.every)} {_days(w.days)} {w.start:%H:%M}-{w.end:%H:%M}"
                        for w in schedule.windows)
    return (f"{_duration(schedule.default)}; {windows} ({schedule.timezone}); "
            f"now {_duration(schedule.interval_at(now))}")


def _days(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    ordered = sorted(days)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{DAY_NAMES[ordered[0]]}-{DAY_NAMES[ordered[-1]]}"
    return ",".join(DAY_NAMES[d] for d in ordered)


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- feedhub poll -------------------------------------------------------------------------


class PollProgress:
    """A live progress bar while sources are polled: done/total, failures so far, ETA.

    Use as a context manager and pass :meth:`done` as the pipeline's per-source
    callback. Log lines printed meanwhile appear above the bar instead of through it.
    """

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.failed = 0
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=True)
        self._task = self._progress.add_task("polling", total=total, failed=0)

    def __enter__(self) -> PollProgress:
        self._progress.start()
        self._log_streams = _redirect_log_handlers(self._progress.console)
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, stream in self._log_streams:
            handler.setStream(stream)
        self._progress.stop()

    def done(self, outcome: PollOutcome) -> None:
        """One source finished polling."""
        if outcome.status in FAILED:
            self.failed += 1
        self._progress.update(self._task, advance=1, failed=self.failed)
        task = self._progress.tasks[0]
        if task.total is not None and task.completed >= task.total:
            self._progress.update(self._task, description="publishing")


def _redirect_log_handlers(console: Console) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Send feedhub's stderr log lines through ``console`` so they print above a live bar."""
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger("feedhub").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr,
                                                                             sys.__stderr__):
            swapped.append((handler, handler.setStream(_ConsoleStream(console))))
    return swapped


class _ConsoleStream:
    """A file-like object writing whole lines through a Rich console."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def write(self, text: str) -> int:
        if text.strip():
            self._console.print(Text(text.rstrip("\n")), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""


def render_poll_summary(console: Console, outcomes: Sequence[PollOutcome]) -> None:
    """After a poll on a terminal: the sources that changed or need attention, and a total."""
    notable = [o for o in outcomes if o.changed or o.status in FAILED or o.moved_to
               or o.status is PollStatus.SKIPPED]
    if notable:
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        table.add_column("result", no_wrap=True)
        table.add_column("source", overflow="fold", ratio=3)
        table.add_column("new", justify="right")
        table.add_column("updated", justify="right")
        table.add_column("note", overflow="fold", ratio=2)
        for o in notable:
            note = o.error or ""
            if o.moved_to:
                note = (note + "; " if note else "") + \
                    f"moved permanently to {o.moved_to}: update feeds.yaml"
            table.add_row(_result(o.status, o.http_status), o.source_url, str(o.new), str(o.updated),
                          note, style=_ROW_STYLES.get(o.status))
        console.print(table)
    quiet = len(outcomes) - len(notable)
    if quiet:
        console.print(f"[dim]{quiet} sources without changes[/dim]")
    console.print(Text(poll_total(outcomes), style="bold"))
