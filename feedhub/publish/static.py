"""Write documents into a folder, each file replaced atomically (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from feedhub.errors import FeedhubError
from feedhub.model import Document

if TYPE_CHECKING:
    from feedhub.store import Store


class PublishError(FeedhubError):
    """Outputs could not be written to disk."""


def write_documents(documents: Iterable[Document], out_dir: Path, *,
                    keep_identical: bool = False) -> int:
    """Write each document to ``out_dir/<path>``; readers never see a half-written file.

    ``keep_identical``: leave a file that already has the document's bytes as it is (its
    time too, which static web servers give as ``Last-Modified``). Returns how many
    files were written.

    Raises:
        PublishError: a file could not be written (the previous version stays).
    """
    count = 0
    root = out_dir.resolve()
    for doc in documents:
        target = (root / doc.path).resolve()
        if not target.is_relative_to(root):
            raise PublishError(f"refusing to write outside {root}: {doc.path}")
        body = doc.body
        if keep_identical and _holds(target, body):
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(body)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise PublishError(f"cannot write {target}") from e
        count += 1
    return count


def _holds(target: Path, body: bytes) -> bool:
    """Whether the file ``target`` has exactly the bytes ``body``."""
    try:
        return target.stat().st_size == len(body) and target.read_bytes() == body
    except OSError:
        return False


async def write_stored(store: Store, paths: Iterable[str], out_dir: Path) -> int:
    """Write the stored documents at ``paths`` to ``out_dir``, one body in memory at a time.

    A path no longer stored is skipped, and so is a file that already has the stored
    bytes (no rewrite, no fsync). Returns how many files were written.

    Raises:
        StoreError: the store cannot be read.
        PublishError: a file could not be written (the previous version stays).
    """
    count = 0
    for path in paths:
        doc = await store.document(path)
        if doc is not None:
            count += write_documents([doc], out_dir, keep_identical=True)
    return count
