"""Load and validate ``feeds.yaml`` into a frozen :class:`Config`.

Validation is strict: unknown keys, bad URLs, durations, time zones or
encodings, undefined categories and duplicate sources are all reported
together, each with the file, line and field and a hint on how to fix it.
This package owns the file format; nothing else reads YAML (but
:mod:`feedhub.edit`, which rewrites the file in place).

:mod:`.types` is what the rest of feedhub reads, :mod:`.files` what the file
may contain, :mod:`.values` how each field is checked, :mod:`.loader` the
reading, :mod:`.resolve` the checks across fields and the defaults,
:mod:`.issues` the error messages.
"""

from __future__ import annotations

from feedhub.config.loader import load_config, parse_config, plain
from feedhub.config.types import (
    DEFAULT_PATH,
    RESERVED_SLUGS,
    Category,
    Config,
    FetchSettings,
    SavedSearch,
    Site,
    Source,
    Storage,
    Webhook,
)

__all__ = ["DEFAULT_PATH", "RESERVED_SLUGS", "Category", "Config", "FetchSettings",
           "SavedSearch", "Site", "Source", "Storage", "Webhook",
           "load_config", "parse_config", "plain"]
