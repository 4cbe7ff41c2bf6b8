"""Webhook deliveries on SQLite: a queue in the ``notifications`` table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from feedhub.store.base import DeliveryCounts, Notification, QueuedNotification
from feedhub.store.sqlite.connection import ROWS, SQLiteBase, to_iso


class NotificationsMixin(SQLiteBase):
    """Deliveries queued by polls, claimed by the sender, dropped once accepted."""

    async def queue_notifications(self, items: Sequence[tuple[str, bytes]],
                                  at: datetime) -> None:
        if not items:
            return
        async with self._errors("queue webhook deliveries"), self._transaction():
            await self._db.executemany(
                "INSERT INTO notifications (webhook_url, body, created, next_at) "
                "VALUES (?, ?, ?, ?)", [(url, body, to_iso(at), to_iso(at)) for url, body in items])

    async def claim_notifications(self, now: datetime, limit: int,
                                  hold: timedelta) -> list[Notification]:
        async with self._errors("claim webhook deliveries"), self._transaction():
            async with self._db.execute(
                    "SELECT id, webhook_url, body, attempts FROM notifications "
                    "WHERE next_at <= ? ORDER BY next_at, id LIMIT ?",
                    (to_iso(now), limit)) as cur:
                rows = await cur.fetchall()
            await self._db.executemany("UPDATE notifications SET next_at = ? WHERE id = ?",
                                       [(to_iso(now + hold), row[0]) for row in rows])
        return [Notification(id=row[0], webhook_url=row[1], body=bytes(row[2]),
                             attempts=row[3]) for row in rows]

    async def settle_notification(self, id: int, *, error: str | None,
                                  retry_at: datetime | None) -> None:
        async with self._errors("record a webhook delivery"), self._transaction():
            if error is None:
                await self._db.execute("DELETE FROM notifications WHERE id = ?", (id,))
            else:
                await self._db.execute(
                    "UPDATE notifications SET attempts = attempts + 1, last_error = ?, "
                    "next_at = ? WHERE id = ?", (error, to_iso(retry_at), id))

    async def notification_counts(self) -> dict[str, DeliveryCounts]:
        # The last error: that of the delivery tried most recently (the highest attempt).
        async with self._errors("count webhook deliveries"), self._db.execute(
                """SELECT webhook_url, COUNT(next_at), COUNT(*) - COUNT(next_at),
                          (SELECT last_error FROM notifications AS n
                           WHERE n.webhook_url = notifications.webhook_url
                             AND last_error IS NOT NULL ORDER BY attempts DESC, id DESC LIMIT 1)
                   FROM notifications GROUP BY webhook_url""") as cur:
            return {row[0]: DeliveryCounts(pending=row[1], given_up=row[2], last_error=row[3])
                    for row in await cur.fetchall()}

    async def import_notifications(self, items: Sequence[QueuedNotification]) -> None:
        async with self._errors("import webhook deliveries"), self._transaction():
            await self._db.executemany(
                """INSERT INTO notifications (webhook_url, body, created, attempts, next_at,
                                              last_error)
                   SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS (
                       SELECT 1 FROM notifications WHERE webhook_url = ?1 AND created = ?3
                           AND body = ?2)""",
                [ROWS.notification_values(n) for n in items])
