"""Edit ``feeds.yaml`` in place: add sources and categories, remove sources.

Everything the operator wrote is kept byte for byte — comments, blank lines,
order, quoting, indentation, line endings. The file is read with ruamel.yaml's
round-trip loader to find its sections and items (their lines and columns),
the new items are emitted by ruamel in the file's own indentation, and only
those lines are inserted (or a removed item's lines deleted). The result is
read back: it must hold exactly the intended data and pass
:func:`feedhub.config.parse_config` before :func:`write_atomically` replaces
the file. Reading and validating the format stay in :mod:`feedhub.config`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from feedhub.config import parse_config, plain
from feedhub.errors import FeedhubError

_DEFAULT_INDENT = 2


class EditError(FeedhubError):
    """``feeds.yaml`` cannot be edited safely, or the edited file cannot be written."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewSource:
    """A ``sources:`` item to add, written as given (``url`` may be ``rsshub:/route``)."""

    url: str
    category: str
    name: str | None = None
    #: A duration as written in feeds.yaml (``10m``).
    interval: str | None = None
    encoding: str | None = None

    def as_mapping(self) -> dict[str, str]:
        """The item's keys in the order they are written."""
        items = {"url": self.url, "category": self.category, "name": self.name,
                 "interval": self.interval, "encoding": self.encoding}
        return {k: v for k, v in items.items() if v is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCategory:
    """A ``categories:`` entry to add."""

    slug: str
    #: The label every entry republished in the category is tagged with.
    title: str
    description: str | None = None

    def as_mapping(self) -> dict[str, str]:
        """The category's keys in the order they are written."""
        items = {"title": self.title, "description": self.description}
        return {k: v for k, v in items.items() if v is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Edit:
    """An edited ``feeds.yaml``, validated, not yet written."""

    #: The whole new text of the file.
    text: str
    #: The lines inserted (``add``) or deleted (``remove``), without line ends.
    lines: tuple[str, ...]
    #: 1-based line number of the first inserted source (or deleted line) in the new file.
    line: int


# --- reading the tree -----------------------------------------------------------------


def _load(text: str, path: Path) -> CommentedMap:
    try:
        tree = YAML(typ="rt").load(text)
    except YAMLError as e:
        raise EditError(f"{path} is not valid YAML ({e}); run feedhub check") from None
    if not isinstance(tree, CommentedMap):
        raise EditError(f"{path} is not a mapping of site:, categories: and sources:")
    return tree


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _section_end(tree: CommentedMap, key: str, line_count: int) -> int:
    """The 0-based line where the top-level section ``key`` ends (the next key, or EOF)."""
    start = tree.lc.key(key)[0]
    later = [tree.lc.key(k)[0] for k in tree if tree.lc.key(k)[0] > start]
    return min(later, default=line_count)


def _back_off(lines: Sequence[str], start: int, end: int, column: int) -> int:
    """Move ``end`` up past trailing blank lines and comments at ``column`` or left of it.

    Such comments introduce what follows (a commented-out item, the next section), so
    a new item goes before them and a removed item leaves them in place.
    """
    while end > start + 1:
        text = lines[end - 1]
        stripped = text.strip()
        if stripped in ("", "---", "...") or (stripped.startswith("#") and _indent_of(text) <= column):
            end -= 1
            continue
        break
    return end


def _mapping_indent(tree: CommentedMap) -> int:
    """How far the file indents a nested mapping (from its categories: section)."""
    categories = tree.get("categories")
    if isinstance(categories, CommentedMap) and categories and not categories.fa.flow_style():
        column = int(categories.lc.key(next(iter(categories)))[1])
        if column > 0:
            return column
    return _DEFAULT_INDENT


def _entry(key: str, value: str) -> str:
    """``key: value`` as ruamel writes it (quoted where YAML needs it), on one line."""
    if "\n" in value or "\r" in value:
        raise EditError(f"{key}: a value with a line break cannot be added: {value!r}")
    yaml = YAML(typ="rt")
    yaml.width = 1 << 16
    buffer = StringIO()
    yaml.dump({key: value}, buffer)
    text = buffer.getvalue()
    if text.count("\n") != 1:
        raise EditError(f"{key}: {value!r} cannot be written on one line")
    return text.rstrip("\n")


def _item_lines(mapping: dict[str, str], dash: int, key: int) -> list[str]:
    entries = [_entry(k, v) for k, v in mapping.items()]
    first = " " * dash + "-" + " " * max(1, key - dash - 1) + entries[0]
    return [first, *(" " * key + e for e in entries[1:])]


def _dash_column(lines: Sequence[str], line: int, column: int) -> tuple[int, int]:
    """The line and column of the ``-`` of a block sequence item whose content is at
    (``line``, ``column``)."""
    for row in (line, line - 1):
        if row < 0:
            break
        text = lines[row]
        limit = column if row == line else len(text)
        dash = text.rfind("-", 0, limit)
        if dash >= 0 and not text[:dash].strip() and not text[dash + 1:limit].strip():
            return row, dash
    return line, max(0, column - 2)


# --- adding ------------------------------------------------------------------------------


def add(text: str, path: Path, *, sources: Sequence[NewSource] = (),
        categories: Sequence[NewCategory] = ()) -> Edit:
    """``text`` with ``categories`` appended to ``categories:`` and ``sources`` to ``sources:``.

    Raises:
        EditError: the file's shape cannot be edited without rewriting it (a flow-style
            ``sources: [...]``, say), or the edit did not come out as intended.
        ConfigError: the edited file is not a valid configuration (an unknown category,
            a duplicate source, a bad duration …); nothing is changed.
    """
    tree = _load(text, path)
    expected = plain(tree)
    if categories:
        text = _add_categories(text, path, tree, categories)
        cats = expected.setdefault("categories", {})
        for category in categories:
            cats[category.slug] = category.as_mapping()
        tree = _load(text, path)
    first, lines = 0, list[str]()
    if sources:
        text, first, lines = _add_sources(text, path, tree, sources)
        if not isinstance(expected.get("sources"), list):
            expected["sources"] = []
        expected["sources"] += [s.as_mapping() for s in sources]
    _verify(text, path, expected)
    return Edit(text=text, lines=tuple(lines), line=first + 1)


def _add_categories(text: str, path: Path, tree: CommentedMap,
                    categories: Sequence[NewCategory]) -> str:
    lines = text.splitlines(keepends=True)
    nl = _newline(text)
    section = tree.get("categories")
    if not isinstance(section, CommentedMap) or not section or section.fa.flow_style():
        raise EditError(f"{path}: categories: is not a block mapping with at least one category; "
                        "add the category by hand")
    last = list(section)[-1]
    row, column = section.lc.key(last)
    value = section[last]
    inner = column + _mapping_indent(tree)
    if isinstance(value, CommentedMap) and value and not value.fa.flow_style():
        inner = int(value.lc.key(next(iter(value)))[1])
    end = _back_off(lines, row, _section_end(tree, "categories", len(lines)), column)
    new: list[str] = []
    for category in categories:
        new.append(" " * column + f"{category.slug}:")
        new += [" " * inner + _entry(k, v) for k, v in category.as_mapping().items()]
    return _splice(lines, end, new, nl)


def _add_sources(text: str, path: Path, tree: CommentedMap,
                 sources: Sequence[NewSource]) -> tuple[str, int, list[str]]:
    lines = text.splitlines(keepends=True)
    nl = _newline(text)
    indent = _mapping_indent(tree)
    if "sources" not in tree:
        new = ["sources:", *(line for s in sources
                             for line in _item_lines(s.as_mapping(), indent, indent + 2))]
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += nl
        return _splice(lines, len(lines), new, nl), len(lines) + 1, new[1:]
    section = tree["sources"]
    row, column = tree.lc.key("sources")
    new = [line for s in sources for line in _item_lines(s.as_mapping(), column + indent,
                                                         column + indent + 2)]
    if section is None or (isinstance(section, CommentedSeq) and not section):
        # `sources:` with nothing, or `sources: []`: the items go right under the key.
        key_line = lines[row]
        if isinstance(section, CommentedSeq):
            at = key_line.find("[]", key_line.index(":"))
            if at < 0:
                raise EditError(f"{path}:{row + 1}: sources: is an empty list written across lines; "
                                "write it as `sources:` or `sources: []`")
            lines[row] = key_line[:at].rstrip() + key_line[at + 2:]
            if not lines[row].endswith(("\n", "\r")):
                lines[row] += nl
        return _splice(lines, row + 1, new, nl), row + 1, new
    if not isinstance(section, CommentedSeq) or section.fa.flow_style():
        raise EditError(f"{path}:{row + 1}: sources: is not a block list ('- url: …' items); "
                        "write it as one to let feedhub edit it")
    item_row, key_column = section.lc.item(len(section) - 1)
    _, dash = _dash_column(lines, item_row, key_column)
    new = [line for s in sources for line in _item_lines(s.as_mapping(), dash, key_column)]
    end = _back_off(lines, item_row, _section_end(tree, "sources", len(lines)), dash)
    return _splice(lines, end, new, nl), end, new


def _splice(lines: list[str], at: int, new: Sequence[str], nl: str) -> str:
    if at > 0 and not lines[at - 1].endswith(("\n", "\r")):
        lines[at - 1] += nl
    return "".join([*lines[:at], *(line + nl for line in new), *lines[at:]])


# --- removing --------------------------------------------------------------------------------


def remove(text: str, path: Path, indexes: Iterable[int]) -> Edit:
    """``text`` without the ``sources:`` items at ``indexes`` (0-based, in file order).

    Comments inside a removed item go with it; comments before the next item stay.

    Raises:
        EditError: no such item, or the edit did not come out as intended.
        ConfigError: the edited file is not a valid configuration.
    """
    tree = _load(text, path)
    expected = plain(tree)
    section = tree.get("sources")
    wanted = sorted(set(indexes), reverse=True)
    if not isinstance(section, CommentedSeq) or section.fa.flow_style() or not wanted \
            or wanted[0] >= len(section) or wanted[-1] < 0:
        raise EditError(f"{path}: no such source to remove")
    lines = text.splitlines(keepends=True)
    nl = _newline(text)
    section_end = _section_end(tree, "sources", len(lines))
    removed: list[str] = []
    first = 0
    for index in wanted:
        row, column = section.lc.item(index)
        start, dash = _dash_column(lines, row, column)
        if index + 1 < len(section):
            next_row, next_column = section.lc.item(index + 1)
            end = _dash_column(lines, next_row, next_column)[0]
        else:
            end = section_end
        end = _back_off(lines, start, end, dash)
        removed[:0] = [line.rstrip("\r\n") for line in lines[start:end]]
        del lines[start:end]
        first = start
        del expected["sources"][index]
    if not expected["sources"]:
        key_row = tree.lc.key("sources")[0]
        body, ending = lines[key_row].rstrip("\r\n"), lines[key_row][len(lines[key_row].rstrip("\r\n")):]
        code, hash_, comment = body.partition(" #")
        lines[key_row] = code.rstrip() + " []" + (f"  #{comment}" if hash_ else "") + (ending or nl)
    new_text = "".join(lines)
    _verify(new_text, path, expected)
    return Edit(text=new_text, lines=tuple(removed), line=first + 1)


def _verify(text: str, path: Path, expected: Any) -> None:
    """The edited text must read back as exactly ``expected`` and be a valid config."""
    if plain(_load(text, path)) != expected:
        raise EditError(f"could not edit {path} without disturbing it; make the change by hand")
    parse_config(text, path)


# --- files -------------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """The file's text exactly as stored (line endings included).

    Raises:
        EditError: it cannot be read.
    """
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EditError(f"cannot read {path} ({e})") from None


def write_atomically(path: Path, text: str, *, expected: str) -> None:
    """Replace the file with ``text`` in one step, if it still holds ``expected``.

    The new file keeps the old one's permissions; a symlink is followed, not replaced.

    Raises:
        EditError: the file changed since it was read (nothing written), or it cannot
            be written.
    """
    target = path.resolve()
    if read_text(target) != expected:
        raise EditError(f"{path} changed while it was being edited; nothing was written, run "
                        "the command again")
    write_bytes_atomically(target, text.encode("utf-8"))


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Replace (or create) the file with ``data`` in one step, synced to disk.

    An existing file's permissions are kept; a symlink is followed, not replaced.

    Raises:
        EditError: it cannot be written.
    """
    target = path.resolve()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise EditError(f"cannot write {path} ({e})") from None
