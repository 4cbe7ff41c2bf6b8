"""The documentation cannot drift from the code: every feeds.yaml key of the config model is
in docs/configuration.md (with its default) and nothing else is; every command and option has
help; README and CHANGELOG name every command."""

from __future__ import annotations

import re
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from feedhub.cli import cli
from feedhub.config.files import FileModel

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
_ROW = re.compile(r"^\|\s*`([a-z_]+(?:(?:\.<slug>|\[\])?\.[a-z_]+)+)`\s*\|(.*)\|\s*$")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_SIZE = re.compile(r"^(\d+)(KB|MB|GB)$")


def _model_of(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('', Model), ('.<slug>', Model) or ('[]', Model) for a nested section, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "", annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and len(args) == 2 and isinstance(args[1], type) \
            and issubclass(args[1], BaseModel):
        return ".<slug>", args[1]
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "[]", args[0]
    return None


def model_keys(model: type[BaseModel] = FileModel, prefix: str = "") -> dict[str, FieldInfo]:
    """Every leaf key of the feeds.yaml schema, as docs/configuration.md writes it."""
    keys: dict[str, FieldInfo] = {}
    for name, info in model.model_fields.items():
        nested = _model_of(info.annotation)
        if nested is None:
            keys[prefix + name] = info
        else:
            suffix, sub = nested
            keys.update(model_keys(sub, f"{prefix}{name}{suffix}."))
    return keys


def documented() -> dict[str, list[str]]:
    """Key → its table cells (type, default, example, meaning) in docs/configuration.md."""
    rows: dict[str, list[str]] = {}
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            key = match.group(1)
            assert key not in rows, f"{key} documented twice"
            rows[key] = [cell.strip() for cell in match.group(2).split(" | ")]
    return rows


def test_every_config_key_is_documented_and_nothing_else() -> None:
    keys, docs = set(model_keys()), set(documented())
    assert keys - docs == set(), f"add these keys to docs/configuration.md: {sorted(keys - docs)}"
    assert docs - keys == set(), f"not feeds.yaml keys any more: {sorted(docs - keys)}"
    text = CONFIGURATION.read_text(encoding="utf-8")
    for section in FileModel.model_fields:
        assert f"\n## `{section}`\n" in text, f"docs/configuration.md needs a ## `{section}` section"


def _seconds(text: str) -> int:
    match = _DURATION.match(text)
    assert match, text
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _code(cell: str) -> str:
    match = re.match(r"^`([^`]*)`", cell)
    return match.group(1) if match else cell


@pytest.mark.parametrize("key", sorted(model_keys()))
def test_documented_default_is_the_models(key: str) -> None:
    """Each key's default column says what the model does: required, none, or the value."""
    info = model_keys()[key]
    type_, default, example, meaning = documented()[key]
    assert example and meaning and type_
    if info.is_required():
        assert default == "required", key
        return
    value = info.get_default(call_default_factory=True)
    if value is None:
        # "none: …", or what it falls back to: another key, or the feed's own title.
        assert default.startswith(("none", "`defaults.", "`site.", "the feed's")), key
    elif isinstance(value, timedelta):
        assert _seconds(_code(default)) == value.total_seconds(), key
    elif isinstance(value, bool):
        raise AssertionError(f"{key}: document booleans")
    elif isinstance(value, int) and _SIZE.match(_code(default)):
        number, unit = _SIZE.match(_code(default)).groups()  # type: ignore[union-attr]
        assert int(number) * {"KB": 1024, "MB": 1024**2, "GB": 1024**3}[unit] == value, key
    elif isinstance(value, list):
        assert _code(default) == repr(value), key
    elif value == "":
        assert default == "empty", key
    else:
        assert _code(default) == str(value), key


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...],
                                                                          click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
    return found


COMMANDS = _commands(cli)


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert command.help and command.help.strip(), f"feedhub {' '.join(path)} has no help"
    assert command.help.strip().split("\n")[0].endswith("."), "the first line is a sentence"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"{' '.join(path)} {param.opts}"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {' '.join(path)}" in result.output or "Usage: " in result.output


def test_readme_and_changelog_name_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Commands"):readme.index("## Subscribing")]
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "\n## Unreleased\n" in changelog
    unreleased = changelog.split("\n## Unreleased\n", 1)[1].split("\n## ", 1)[0]
    for path, command in COMMANDS:
        if isinstance(command, click.Group):
            continue
        name = "feedhub " + " ".join(path)
        assert f"| `{name}" in table, f"README's command table lacks {name}"
        assert f"`{name}" in unreleased, f"CHANGELOG's Unreleased section lacks {name}"
    for doc in ("docs/configuration.md", "docs/subscribe.md"):
        assert f"]({doc})" in readme, f"README does not link {doc}"
