"""Validation errors as ``feeds.yaml:LINE: field: message`` issues."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from feedhub.config.files import (
    INTERVAL_TAGS,
    SECTIONS,
    FileModel,
)
from feedhub.errors import ConfigIssue


def line_of(tree: Any, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the deepest node along ``loc`` that exists in the YAML tree."""
    node, line = tree, None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    if line is None and hasattr(tree, "lc"):
        return int(tree.lc.line) + 1
    return line


def _field_name(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _section(parent: tuple[str | int, ...]) -> type[BaseModel]:
    """The schema model of the mapping at ``parent`` (a category's slug is not a section)."""
    names = [part for i, part in enumerate(parent) if isinstance(part, str)
             and not (i == 1 and parent[0] == "categories")]
    return next((SECTIONS[n] for n in reversed(names) if n in SECTIONS), FileModel)


def issue_from_pydantic(name: str, tree: Any, err: Any) -> ConfigIssue:
    """One pydantic error as an issue naming the file, line and field."""
    loc = tuple(part for part in err["loc"] if part not in INTERVAL_TAGS)
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    hint = ""
    if kind == "extra_forbidden":
        allowed = ", ".join(_section(loc[:-1]).model_fields)
        message = f"unknown key {loc[-1]!r}"
        hint = f"check its spelling; allowed here: {allowed}"
    elif kind == "missing":
        message = "required field is missing"
        hint = f"add {loc[-1]}: to this section"
    elif ": " in message and kind == "value_error":
        message, _, hint = message.partition(": ")
    elif kind in ("dict_type", "model_type"):
        hint = "write a mapping of key: value lines, indented under it"
    elif kind == "list_type":
        hint = "write a list of items, each starting with '- '"
    return ConfigIssue(name, line_of(tree, loc), _field_name(loc), message, hint)
