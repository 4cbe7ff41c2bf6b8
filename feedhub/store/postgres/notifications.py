"""Webhook deliveries on PostgreSQL: a queue in the ``notifications`` table.

Claims skip rows another node is claiming (``FOR UPDATE SKIP LOCKED``), so each
delivery has one sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from feedhub.store.base import DeliveryCounts, Notification, QueuedNotification
from feedhub.store.postgres.connection import ROWS, PostgresBase

_IMPORT = """
    INSERT INTO notifications (webhook_url, body, created, attempts, next_at, last_error)
    SELECT u.webhook_url, u.body, u.created, u.attempts, u.next_at, u.last_error
    FROM unnest(%s::text[], %s::bytea[], %s::timestamptz[], %s::integer[],
                %s::timestamptz[], %s::text[])
         WITH ORDINALITY AS u(webhook_url, body, created, attempts, next_at, last_error, n)
    WHERE NOT EXISTS (SELECT 1 FROM notifications q
                      WHERE q.webhook_url = u.webhook_url AND q.created = u.created
                        AND q.body = u.body)
    ORDER BY u.n"""


class NotificationsMixin(PostgresBase):
    """Deliveries queued by polls, claimed by one node's sender, dropped once accepted."""

    async def queue_notifications(self, items: Sequence[tuple[str, bytes]],
                                  at: datetime) -> None:
        if not items:
            return
        async with self._transaction("queue webhook deliveries") as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO notifications (webhook_url, body, created, next_at) "
                "VALUES (%s, %s, %s, %s)", [(url, body, at, at) for url, body in items])

    async def claim_notifications(self, now: datetime, limit: int,
                                  hold: timedelta) -> list[Notification]:
        rows = await self._rows(
            "claim webhook deliveries",
            """UPDATE notifications SET next_at = %(until)s
               WHERE id IN (
                   SELECT id FROM notifications WHERE next_at <= %(now)s
                   ORDER BY next_at, id LIMIT %(limit)s
                   FOR UPDATE SKIP LOCKED)
               RETURNING id, webhook_url, body, attempts""",
            {"until": now + hold, "now": now, "limit": limit})
        return [Notification(id=row["id"], webhook_url=row["webhook_url"],
                             body=bytes(row["body"]), attempts=row["attempts"])
                for row in sorted(rows, key=lambda r: r["id"])]

    async def settle_notification(self, id: int, *, error: str | None,
                                  retry_at: datetime | None) -> None:
        async with self._transaction("record a webhook delivery") as conn:
            if error is None:
                await conn.execute("DELETE FROM notifications WHERE id = %s", (id,))
            else:
                await conn.execute(
                    "UPDATE notifications SET attempts = attempts + 1, last_error = %s, "
                    "next_at = %s WHERE id = %s", (error, retry_at, id))

    async def notification_counts(self) -> dict[str, DeliveryCounts]:
        rows = await self._rows(
            "count webhook deliveries",
            """SELECT webhook_url, COUNT(next_at) AS pending,
                      COUNT(*) - COUNT(next_at) AS given_up,
                      (ARRAY_AGG(last_error ORDER BY attempts DESC, id DESC)
                       FILTER (WHERE last_error IS NOT NULL))[1] AS last_error
               FROM notifications GROUP BY webhook_url""")
        return {row["webhook_url"]: DeliveryCounts(pending=row["pending"],
                                                   given_up=row["given_up"],
                                                   last_error=row["last_error"]) for row in rows}

    async def import_notifications(self, items: Sequence[QueuedNotification]) -> None:
        await self._insert_arrays("import webhook deliveries", _IMPORT,
                                  [ROWS.notification_values(n) for n in items], 6)
