"""Read ``feeds.yaml``: YAML with line numbers kept for errors, then validate and resolve."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from feedhub.config.files import (
    FileModel,
)
from feedhub.config.issues import issue_from_pydantic
from feedhub.config.resolve import cross_issues, resolve
from feedhub.config.types import (
    DEFAULT_PATH,
    Config,
)
from feedhub.errors import ConfigError, ConfigIssue


def load_config(path: Path | str = DEFAULT_PATH) -> Config:
    """Read, validate and resolve a ``feeds.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or invalid; every problem found
            is listed with file, line, field and a hint.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(name, None, "", "file not found",
                                       "pass --config PATH or set FEEDHUB_CONFIG")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([ConfigIssue(name, None, "", f"cannot read the file ({e})",
                                       "check its permissions and that it is UTF-8")]) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate the YAML ``text`` of the file at ``path`` (see :func:`load_config`)."""
    name = str(path)
    data = fast_data(text)
    if data is not None and not cross_issues(data, None, name):
        try:
            return resolve(FileModel.model_validate(data), path)
        except ValidationError:
            pass  # reported below, each problem with its line
    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise ConfigError([ConfigIssue(name, line, "", f"not valid YAML: {e.problem}",
                                       "check indentation and quoting around this line")]) from None
    if not isinstance(tree, CommentedMap):
        raise ConfigError([ConfigIssue(name, 1, "", "the file must be a mapping with site:, "
                                       "categories: and sources:", "see the example feeds.yaml")])
    data = plain(tree)
    cross = cross_issues(data, tree, name)
    try:
        model = FileModel.model_validate(data)
    except ValidationError as e:
        issues = [issue_from_pydantic(name, tree, err) for err in e.errors()]
        seen = {i.field for i in issues}
        raise ConfigError(sorted(issues + [i for i in cross if i.field not in seen],
                                 key=lambda i: i.line or 0)) from None
    if cross:
        raise ConfigError(cross)
    return resolve(model, path)


class _NotPlain(Exception):
    """A value the fast loader may read differently from the round-trip one."""


#: Merge keys (``<<``) order keys differently, and a ``%YAML 1.1`` directive changes
#: scalars (``yes``) only for the round-trip loader: such files take its path.
_ROUND_TRIP_ONLY = re.compile(r"<<|^%", re.M)


def fast_data(text: str) -> Any:
    """The file's data from the C-accelerated safe loader, ``None`` when it is not sure.

    The round-trip parser (which knows lines) costs ~1 ms per source; reading a valid
    file needs no lines. ``None`` for anything this loader rejects or may read
    differently (tags, dates, merge keys): the round-trip path then decides.
    """
    if _ROUND_TRIP_ONLY.search(text):
        return None
    try:
        data = _safe_plain(YAML(typ="safe").load(text))
    except Exception:  # any problem: the round-trip path reports it, with its line
        return None
    return data if isinstance(data, dict) else None


def _safe_plain(node: Any) -> Any:
    """The safe loader's data if it holds only mappings with string keys, lists and
    plain scalars (else :class:`_NotPlain`): those both loaders read alike."""
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            raise _NotPlain
        return {k: _safe_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_safe_plain(v) for v in node]
    if node is None or isinstance(node, str | int | float):  # bool is an int
        return node
    raise _NotPlain


def plain(node: Any) -> Any:
    """Ruamel's commented containers as plain dicts and lists (keys as strings)."""
    if isinstance(node, CommentedMap):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [plain(v) for v in node]
    return node
