"""What ``feeds.yaml`` may contain: the pydantic models of the file, one per section.

Unknown keys are errors; values are checked by :mod:`feedhub.config.values`.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from feedhub.config.values import (
    byte_size,
    css_selector,
    duration_value,
    encoding_name,
    filter_rule,
    http_url,
    listen_address,
    query_text,
    rewrite_rule,
    source_url,
    store_url,
    time_range,
    timezone_name,
    weekdays,
)
from feedhub.filters import Rewrite, RuleSet, compile_pattern, parse_rule
from feedhub.policy import Schedule, Window
from feedhub.selectors import ScrapeRules, compile_selector

Duration = Annotated[timedelta, BeforeValidator(duration_value)]


HttpUrl = Annotated[str, BeforeValidator(http_url)]


SourceUrl = Annotated[str, BeforeValidator(source_url)]


TimeZoneName = Annotated[str, BeforeValidator(timezone_name)]


EncodingName = Annotated[str, BeforeValidator(encoding_name)]


Listen = Annotated[str, BeforeValidator(listen_address)]


FilterRule = Annotated[str, BeforeValidator(filter_rule)]


RewriteRule = Annotated[tuple[str, str], BeforeValidator(rewrite_rule)]


CssSelector = Annotated[str, BeforeValidator(css_selector)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SiteModel(_Strict):
    """``site:``: the hub's title, address, time zone and data folder."""

    title: str = Field(min_length=1)
    base_url: HttpUrl
    timezone: TimeZoneName = "Asia/Shanghai"
    data_dir: str = "data"
    rsshub: HttpUrl = "https://rsshub.app/"
    websub_hubs: list[HttpUrl] = Field(default_factory=list)


class _ServerModel(_Strict):
    listen: Listen = "127.0.0.1:8080"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


Size = Annotated[int, BeforeValidator(byte_size)]


class _FetchModel(_Strict):
    timeout: Duration = timedelta(seconds=60)
    max_body: Size = 16 * 1024 * 1024
    max_redirects: int = Field(default=5, ge=0, le=20)
    per_host: int = Field(default=2, ge=1, le=64)
    concurrency: int = Field(default=10, ge=1, le=256)
    private_links: Literal["refuse", "allow"] = "refuse"


class _RetentionModel(_Strict):
    days: int | None = Field(default=None, ge=1)
    entries_per_source: int | None = Field(default=None, ge=1)


StoreUrl = Annotated[str, BeforeValidator(store_url)]


class _StorageModel(_Strict):
    url: StoreUrl | None = None
    lease: Duration = timedelta(minutes=5)
    # One connection is held by a running singleton job while others serve.
    pool_size: int = Field(default=10, ge=2, le=200)


Days = Annotated[frozenset[int], BeforeValidator(weekdays)]


Between = Annotated[tuple[time, time], BeforeValidator(time_range)]


class _WindowModel(_Strict):
    days: Days = frozenset(range(7))
    between: Between
    every: Duration


class ScheduleModel(_Strict):
    """An ``interval:`` given as a schedule: a default and time windows."""

    default: Duration
    timezone: TimeZoneName | None = None
    windows: list[_WindowModel] = Field(default_factory=list)

    def schedule(self, timezone: str) -> Schedule:
        return Schedule(default=self.default, timezone=ZoneInfo(self.timezone or timezone),
                        windows=tuple(Window(days=w.days, start=w.between[0],
                                             end=w.between[1], every=w.every)
                                      for w in self.windows))


def _interval_kind(value: Any) -> str:
    return "schedule" if isinstance(value, dict | ScheduleModel) else "duration"


#: ``15m``, or ``{default: 30m, windows: [{days: mon-fri, between: 09:15-15:00, every: 2m}]}``.
Interval = Annotated[Annotated[timedelta, BeforeValidator(duration_value), Tag("duration")]
                     | Annotated[ScheduleModel, Tag("schedule")],
                     Discriminator(_interval_kind)]


INTERVAL_TAGS = frozenset({"duration", "schedule"})


class _DefaultsModel(_Strict):
    interval: Interval = timedelta(minutes=15)
    max_entries: int = Field(default=50, ge=1, le=10000)
    quiet_factor: int = Field(default=10, ge=2, le=1000)
    quiet_after: Duration = timedelta(days=2)


class _RulesModel(_Strict):
    include: list[FilterRule] = Field(default_factory=list)
    exclude: list[FilterRule] = Field(default_factory=list)
    rewrite: list[RewriteRule] = Field(default_factory=list)

    def rules(self) -> RuleSet:
        return RuleSet(include=tuple(parse_rule(r) for r in self.include),
                       exclude=tuple(parse_rule(r) for r in self.exclude),
                       rewrite=tuple(Rewrite(compile_pattern(p), to) for p, to in self.rewrite))


class ScrapeModel(_Strict):
    """``scrape:``: the source is an HTML listing page, read with these CSS selectors."""

    item: CssSelector
    title: CssSelector
    link: CssSelector
    date: CssSelector | None = None
    summary: CssSelector | None = None

    def rules(self) -> ScrapeRules:
        """The selectors compiled for the scraper."""
        return ScrapeRules(
            item=compile_selector(self.item), title=compile_selector(self.title),
            link=compile_selector(self.link),
            date=compile_selector(self.date) if self.date else None,
            summary=compile_selector(self.summary) if self.summary else None)


class _CategoryModel(_RulesModel):
    title: str = Field(min_length=1)
    description: str = ""
    interval: Interval | None = None
    #: Applies to each of the category's sources that has no ``scrape:`` of its own.
    scrape: ScrapeModel | None = None
    #: Apply to each of the category's sources that does not set them itself.
    full_text: bool | None = None
    full_text_selector: CssSelector | None = None


QueryText = Annotated[str, BeforeValidator(query_text)]


class _QueryModel(_Strict):
    query: QueryText
    title: str | None = Field(default=None, min_length=1)
    description: str = ""
    categories: list[str] = Field(default_factory=list)


class _SourceModel(_RulesModel):
    url: SourceUrl | None = None
    urls: list[SourceUrl] | None = Field(default=None, min_length=1)
    category: str
    name: str | None = None
    interval: Interval | None = None
    timezone: TimeZoneName | None = None
    encoding: EncodingName | None = None
    scrape: ScrapeModel | None = None
    full_text: bool | None = None
    full_text_selector: CssSelector | None = None


class _WebhookModel(_Strict):
    url: HttpUrl
    categories: list[str] | None = Field(default=None, min_length=1)
    secret: str | None = Field(default=None, min_length=1)


class _NotifyModel(_Strict):
    webhooks: list[_WebhookModel] = Field(default_factory=list)


class FileModel(_Strict):
    """The whole of ``feeds.yaml``."""

    site: SiteModel
    server: _ServerModel = _ServerModel()
    defaults: _DefaultsModel = _DefaultsModel()
    retention: _RetentionModel = _RetentionModel()
    fetch: _FetchModel = _FetchModel()
    categories: dict[str, _CategoryModel] = Field(min_length=1)
    sources: list[_SourceModel] = Field(default_factory=list)
    queries: dict[str, _QueryModel] = Field(default_factory=dict)
    storage: _StorageModel = _StorageModel()
    notify: _NotifyModel = _NotifyModel()


SECTIONS: dict[str, type[BaseModel]] = {
    "": FileModel,
    "site": SiteModel,
    "server": _ServerModel,
    "defaults": _DefaultsModel,
    "retention": _RetentionModel,
    "fetch": _FetchModel,
    "categories": _CategoryModel,
    "sources": _SourceModel,
    "storage": _StorageModel,
    "notify": _NotifyModel,
    "webhooks": _WebhookModel,
    "queries": _QueryModel,
    "interval": ScheduleModel,
    "windows": _WindowModel,
}
