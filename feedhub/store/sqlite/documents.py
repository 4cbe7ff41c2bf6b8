"""Rendered documents (gzip-compressed) on SQLite: stored only when their bytes change."""

from __future__ import annotations

from collections.abc import Iterable

from feedhub.model import Document
from feedhub.store.sqlite.connection import ROWS, SQLiteBase, batches, to_iso


class DocumentsMixin(SQLiteBase):
    """The rendered outputs, by URL path."""

    async def put_documents(self, documents: Iterable[Document]) -> list[Document]:
        docs = list(documents)
        if not docs:
            return []
        async with self._errors("store rendered documents"), self._transaction():
            # Unchanged bytes (same ETag) are not written: the stored time stays.
            known: dict[str, str] = {}
            for batch, batch_marks in batches([doc.path for doc in docs]):
                async with self._db.execute(
                        f"SELECT path, etag FROM documents WHERE path IN ({batch_marks})",
                        batch) as cur:
                    known.update({row[0]: row[1] for row in await cur.fetchall()})
            changed = [doc for doc in docs if known.get(doc.path) != doc.etag]
            await self._db.executemany(
                """INSERT INTO documents (path, body, encoding, content_type, etag, modified)
                   VALUES (?,?,'gzip',?,?,?)
                   ON CONFLICT (path) DO UPDATE SET body=excluded.body,
                       encoding=excluded.encoding, content_type=excluded.content_type,
                       etag=excluded.etag, modified=excluded.modified""",
                [(doc.path, doc.gzipped, doc.content_type, doc.etag, to_iso(doc.modified))
                 for doc in changed])
        return changed

    async def document(self, path: str) -> Document | None:
        async with self._errors("read a document"), self._db.execute(
                "SELECT * FROM documents WHERE path = ?", (path,)) as cur:
            row = await cur.fetchone()
        return ROWS.document(row) if row else None

    async def document_paths(self, prefix: str = "") -> list[str]:
        # Answered from the primary key's index: no row (and so no body) is read.
        async with self._errors("list documents"), self._db.execute(
                "SELECT path FROM documents WHERE substr(path, 1, ?) = ? ORDER BY path",
                (len(prefix), prefix)) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def document_etags(self, prefix: str = "") -> dict[str, str]:
        # From the documents_etags index: the bodies (before etag in the row) are not read.
        async with self._errors("list documents"), self._db.execute(
                "SELECT path, etag FROM documents INDEXED BY documents_etags "
                "WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)) as cur:
            return {row[0]: row[1] for row in await cur.fetchall()}

    async def documents(self) -> list[Document]:
        async with self._errors("read documents"), self._db.execute(
                "SELECT * FROM documents ORDER BY path") as cur:
            return [ROWS.document(row) for row in await cur.fetchall()]
