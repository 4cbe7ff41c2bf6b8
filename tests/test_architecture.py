"""docs/architecture.md stays true: the import rules it states are checked here.

Every module of feedhub/ is read with :mod:`ast` (imports inside functions and
``TYPE_CHECKING`` blocks count too), so a stage that reaches into another's
internals, a library imported outside its stage, or a module grown past the
size a reader can hold fails the suite.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "feedhub"
MAX_LINES = 400

#: Third-party libraries and the only modules (or packages, ending in ".") that import them.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "feedparser": ("feedhub.parse",),
    "feedgen": ("feedhub.render.feeds",),
    "jinja2": ("feedhub.render.pages",),
    "apscheduler": ("feedhub.schedule",),
    "httpx": ("feedhub.fetch", "feedhub.publish."),
    "aiosqlite": ("feedhub.store.sqlite.",),
    "psycopg": ("feedhub.store.postgres.",),
    "psycopg_pool": ("feedhub.store.postgres.",),
    "nh3": ("feedhub.sanitize",),
    "pydantic": ("feedhub.config.",),
    "ruamel": ("feedhub.config.", "feedhub.edit"),
    "click": ("feedhub.cli.",),
    "rich": ("feedhub.report", "feedhub.cli."),
    "starlette": ("feedhub.server", "feedhub.demo"),
    "granian": ("feedhub.server",),
    "uvloop": ("feedhub.server",),
    "prometheus_client": ("feedhub.metrics", "feedhub.server"),
    "lxml": ("feedhub.scrape", "feedhub.extract"),
    "trafilatura": ("feedhub.extract",),
    "cssselect": ("feedhub.selectors",),
}

#: Packages whose insides are private: other modules import only these public parts.
PUBLIC: dict[str, tuple[str, ...]] = {
    "feedhub.cli": ("feedhub.cli",),
    "feedhub.config": ("feedhub.config",),
    "feedhub.daemon": ("feedhub.daemon",),
    "feedhub.store": ("feedhub.store", "feedhub.store.base", "feedhub.store.transfer"),
    "feedhub.render": ("feedhub.render.site", "feedhub.render.feeds"),
}

#: The data flow, in order. A stage may use what an earlier stage defines (a fetcher
#: reads its settings from config), never a later stage nor what drives the stages.
STAGES: tuple[tuple[str, ...], ...] = (
    ("feedhub.config", "feedhub.edit", "feedhub.opml"),
    ("feedhub.schedule",),
    ("feedhub.fetch",),
    ("feedhub.parse", "feedhub.discover", "feedhub.scrape", "feedhub.extract"),
    ("feedhub.normalize", "feedhub.ssrf", "feedhub.fulltext"),
    ("feedhub.store",),
    ("feedhub.render",),
    ("feedhub.publish",),
    ("feedhub.server",),
)
#: What drives the stages; no stage imports these.
DRIVERS = ("feedhub.pipeline", "feedhub.operations", "feedhub.daemon", "feedhub.cli", "feedhub.demo",
           "feedhub.__main__")


@dataclass(frozen=True)
class Import:
    module: str
    target: str
    line: int


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def _imports(path: Path) -> list[Import]:
    module = _name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                if not _is_package(path):
                    base = base[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append(Import(module, target, node.lineno))
            # ``from feedhub.store import sqlite`` names a module too.
            found += [Import(module, f"{target}.{alias.name}", node.lineno)
                      for alias in node.names if _is_module(f"{target}.{alias.name}")]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))
IMPORTS = [i for path in MODULES for i in _imports(path)]


def _within(module: str, prefix: str) -> bool:
    """Whether ``module`` is ``prefix`` or inside it (``prefix`` a module or package)."""
    if prefix.endswith("."):
        return module == prefix[:-1] or module.startswith(prefix)
    return module == prefix or module.startswith(prefix + ".")


def _stage(module: str) -> int | None:
    for number, members in enumerate(STAGES):
        if any(_within(module, m) for m in members):
            return number
    return None


def _where(i: Import) -> str:
    return f"{i.module} (line {i.line}) imports {i.target}"


def test_the_rules_see_the_code() -> None:
    """The checks below read real imports: a rule over nothing would pass vacuously."""
    targets = {(i.module, i.target) for i in IMPORTS}
    assert ("feedhub.parse", "feedparser") in targets
    assert any(m == "feedhub.pipeline" and t.startswith("feedhub.store") for m, t in targets)
    assert len(MODULES) > 40


def test_libraries_are_imported_only_by_their_stage() -> None:
    wrong = []
    for i in IMPORTS:
        top = i.target.split(".")[0]
        owners = LIBRARIES.get(top)
        if owners is None:
            # Anything else must be the standard library or feedhub itself.
            if top not in sys.stdlib_module_names and top not in ("feedhub", "__future__", ""):
                wrong.append(f"{_where(i)}: a library with no stage in LIBRARIES")
            continue
        if not any(_within(i.module, o) for o in owners):
            wrong.append(f"{_where(i)}: only {', '.join(owners)} may")
    assert not wrong, "\n".join(wrong)


def test_packages_are_entered_by_their_front_door() -> None:
    wrong = []
    for i in IMPORTS:
        for package, public in PUBLIC.items():
            if _within(i.target, package) and not _within(i.module, package) \
                    and i.target not in public:
                wrong.append(f"{_where(i)}: outside {package} use {', '.join(public)}")
    assert not wrong, "\n".join(wrong)


def test_stages_import_only_earlier_stages() -> None:
    wrong = []
    for i in IMPORTS:
        if not i.target.startswith("feedhub."):
            continue
        here, there = _stage(i.module), _stage(i.target)
        if here is None:
            continue
        if any(_within(i.target, d) for d in DRIVERS):
            wrong.append(f"{_where(i)}: a stage must not import what drives it")
        elif there is not None and there > here:
            wrong.append(f"{_where(i)}: a later stage")
    assert not wrong, "\n".join(wrong)


def test_only_the_pipeline_knows_the_stage_order() -> None:
    """Fetching and storing meet in the pipeline (and what drives it), nowhere else."""
    both = {}
    for i in IMPORTS:
        if _within(i.target, "feedhub.fetch") or _within(i.target, "feedhub.store"):
            both.setdefault(i.module, set()).add(i.target.split(".")[1])
    meeting = {m for m, kinds in both.items() if {"fetch", "store"} <= kinds}
    assert meeting, "the pipeline should fetch and store"
    assert all(any(_within(m, d) for d in DRIVERS) for m in meeting), sorted(meeting)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outgrows_a_reading(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def test_the_architecture_document_names_real_modules() -> None:
    """Every ``module.py`` and package docs/architecture.md describes exists in feedhub/."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for paragraph in text.split("\n\n"):
        # A paragraph that opens with **`name/`** describes that package and its modules.
        opened = re.match(r"\*\*`([a-z_]+)/`\*\*", paragraph)
        where = PACKAGE / opened.group(1) if opened else PACKAGE
        if opened and not where.is_dir():
            missing.append(f"{opened.group(1)}/")
        for name in re.findall(r"`([a-z_/]+\.py)`", paragraph):
            if name.startswith("tests/"):
                continue
            if not ((ROOT / name).exists() or (PACKAGE / name).exists()
                    or any(where.rglob(name))):
                missing.append(name)
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
