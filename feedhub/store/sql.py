"""SQL that both stores write the same way (but for their placeholders).

Only the rules the two must agree on live here: which copy of an article shown
through several sources wins, which entries are a source's newest, the column
lists of the statements that write every column. No database driver is
imported here.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedhub.store import tables

#: The columns of a source's state (:meth:`~feedhub.store.rows.Rows.state_values`).
STATE_COLUMNS = (*tables.SOURCES.names, tables.ACTIVE_URL.name)
#: The columns of an entry (:meth:`~feedhub.store.rows.Rows.entry_values`): all but ``id``.
ENTRY_COLUMNS = tuple(name for name in tables.ENTRIES.names if name != "id")


def names(columns: Sequence[str]) -> str:
    """``a, b, c``."""
    return ", ".join(columns)


def excluded(columns: Sequence[str]) -> str:
    """The ``SET`` list of an upsert that overwrites ``columns`` with the new row's."""
    return ", ".join(f"{c}=excluded.{c}" for c in columns)


#: The ``SET`` list of an upsert of a source's state (all but its key, ``url``).
STATE_UPDATE = excluded(STATE_COLUMNS[1:])
#: The ``SET`` list of an upsert of an entry (all but its key, ``source_url`` and ``key``).
ENTRY_UPDATE = excluded(ENTRY_COLUMNS[2:])


def first_copy(chosen: str) -> str:
    """The condition that entry ``e`` is the first-seen copy of its canonical link among
    the sources ``source_url {chosen}`` matches (ties: the first stored).

    An article reached through several sources is shown once, from where it was seen first.
    """
    return f"""NOT EXISTS (
        SELECT 1 FROM entries o
        WHERE o.canonical_link = e.canonical_link
          AND (o.first_seen < e.first_seen OR (o.first_seen = e.first_seen AND o.id < e.id))
          AND o.source_url {chosen})"""


def ranked(columns: str) -> str:
    """``columns`` of every entry with ``n``, its rank in its source (1: the newest)."""
    return (f"SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY source_url "
            f"ORDER BY published DESC, id DESC) AS n FROM entries")


#: Rows of :func:`entry_times` read at once: memory stays bounded (all 200,000 rows of
#: 10,000 sources at once are ~90 MB of row objects) in few round trips.
TIMES_CHUNK = 4096


def entry_times(mark: str) -> str:
    """(source_url, published, first_seen) of each source's newest entries, newest first;
    ``mark``: the placeholder of how many per source."""
    return f"""SELECT source_url, published, first_seen
               FROM ({ranked('source_url, published, first_seen')}) ranked
               WHERE n <= {mark} ORDER BY source_url, published DESC"""
