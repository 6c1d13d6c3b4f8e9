"""The public surface: each name has one public home, and imports run one way."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import triolette

PUBLIC_HOMES = ["triolette", "triolette.stores", "triolette.testing"]
PACKAGE = Path(triolette.__file__).parent

# core <- stores <- actors <- runtime; testing may use all of them.
ALLOWED = {
    "core": {"core"},
    "stores": {"core", "stores"},
    "actors": {"core", "stores", "actors"},
    "runtime": {"core", "stores", "actors", "runtime"},
}


def test_the_seed_and_spec_names_are_importable_from_the_top_level():
    from triolette import (  # noqa: F401
        AllSavePolicy,
        AnySavePolicy,
        App,
        DeviceContext,
        DeviceStore,
        JsonFileStore,
        MemoryStore,
        NullStore,
        PersistPolicy,
        SaveOnChange,
        SaveOnPublish,
        SaveOnShutdown,
        SqliteStore,
        Store,
    )
    from triolette.testing import AppHarness  # noqa: F401


@pytest.mark.parametrize("home", PUBLIC_HOMES)
def test_all_is_sorted_and_complete(home):
    module = importlib.import_module(home)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{home}.{name} is listed but missing"


def test_each_public_name_has_exactly_one_home():
    seen: dict[int, str] = {}
    for home in PUBLIC_HOMES:
        module = importlib.import_module(home)
        for name in module.__all__:
            obj = getattr(module, name)
            assert id(obj) not in seen, f"{home}.{name} is also public as {seen[id(obj)]}"
            seen[id(obj)] = f"{home}.{name}"


@pytest.mark.parametrize("home", PUBLIC_HOMES)
def test_public_names_report_their_public_home(home):
    module = importlib.import_module(home)
    for name in module.__all__:
        assert getattr(module, name).__module__ == home, name


@pytest.mark.parametrize("internal", ["core", "stores", "actors", "runtime", "testing"])
def test_internal_modules_are_not_another_public_home(internal):
    """Subpackage modules may define names, but only their package re-exports them."""
    for path in (PACKAGE / internal).glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        assert not any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            for node in tree.body
        ), f"{path.name} declares __all__: public names live in {PUBLIC_HOMES}"


def _imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "triolette":
                layers.add(parts[1] if len(parts) > 1 else "<top level>")
    return layers


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_run_one_way(layer):
    for path in (PACKAGE / layer).rglob("*.py"):
        wrong = _imported_layers(path) - ALLOWED[layer]
        assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)}"


def test_core_never_imports_trio():
    for path in (PACKAGE / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                assert not any(m and m.split(".")[0] == "trio" for m in modules), path.name
