"""Rendered documents (gzip-compressed) on PostgreSQL: stored only when their bytes change."""

from __future__ import annotations

from collections.abc import Iterable

from feedhub.model import Document
from feedhub.store.postgres.connection import ROWS, PostgresBase


class DocumentsMixin(PostgresBase):
    """The rendered outputs, by URL path."""

    async def put_documents(self, documents: Iterable[Document]) -> list[Document]:
        docs = list(documents)
        changed: list[Document] = []
        if not docs:
            return changed
        async with self._transaction("store rendered documents") as conn:
            # Bodies already stored (same ETag) are not even sent: most of a
            # republish is unchanged pages.
            cur = await conn.execute("SELECT path, etag FROM documents WHERE path = ANY(%s)",
                                     ([doc.path for doc in docs],))
            known = {row["path"]: row["etag"] for row in await cur.fetchall()}
            for doc in docs:
                if known.get(doc.path) == doc.etag:
                    continue
                # The row lock of the upsert orders concurrent writers; a node whose bytes
                # are already stored (by another node) writes nothing and reports nothing.
                cur = await conn.execute(
                    """INSERT INTO documents (path, body, encoding, content_type, etag, modified)
                       VALUES (%s,%s,'gzip',%s,%s,%s)
                       ON CONFLICT (path) DO UPDATE SET body=excluded.body,
                           encoding=excluded.encoding, content_type=excluded.content_type,
                           etag=excluded.etag, modified=excluded.modified
                       WHERE documents.etag <> excluded.etag
                       RETURNING path""",
                    (doc.path, doc.gzipped, doc.content_type, doc.etag, doc.modified))
                if await cur.fetchone() is not None:
                    changed.append(doc)
        return changed

    async def document(self, path: str) -> Document | None:
        rows = await self._rows("read a document", "SELECT * FROM documents WHERE path = %s",
                                (path,))
        return ROWS.document(rows[0]) if rows else None

    async def document_paths(self, prefix: str = "") -> list[str]:
        rows = await self._rows("list documents",
                                'SELECT path FROM documents WHERE left(path, %s) = %s '
                                'ORDER BY path COLLATE "C"', (len(prefix), prefix))
        return [row["path"] for row in rows]

    async def document_etags(self, prefix: str = "") -> dict[str, str]:
        # Bodies are TOASTed out of line: reading the etags does not read them.
        rows = await self._rows("list documents",
                                "SELECT path, etag FROM documents WHERE left(path, %s) = %s",
                                (len(prefix), prefix))
        return {row["path"]: row["etag"] for row in rows}

    async def documents(self) -> list[Document]:
        rows = await self._rows("read documents", 'SELECT * FROM documents ORDER BY path COLLATE "C"')
        return [ROWS.document(row) for row in rows]
