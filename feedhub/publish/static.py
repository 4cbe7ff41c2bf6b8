"""Write documents into a folder, each file replaced atomically (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from feedhub.errors import FeedhubError
from feedhub.model import Document


class PublishError(FeedhubError):
    """Outputs could not be written to disk."""


def write_documents(documents: Iterable[Document], out_dir: Path) -> int:
    """Write each document to ``out_dir/<path>``; readers never see a half-written file.

    Raises:
        PublishError: a file could not be written (the previous version stays).
    """
    count = 0
    root = out_dir.resolve()
    for doc in documents:
        target = (root / doc.path).resolve()
        if not target.is_relative_to(root):
            raise PublishError(f"refusing to write outside {root}: {doc.path}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(doc.body)
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
