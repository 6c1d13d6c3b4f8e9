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


def imported_modules(source: str, package: str) -> set[str]:
    """The absolute names of the modules ``source``, a module of ``package``, imports.

    Relative imports are resolved against ``package``; for ``from . import name`` the name
    counts as a module. Raises ``ValueError`` for a relative import above the top package.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module or "")
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            if node.level > len(parts):
                raise ValueError(f"{'.' * node.level}{node.module or ''} goes above {package}")
            base = ".".join(parts[: len(parts) - node.level + 1])
            if node.module:
                found.add(f"{base}.{node.module}")
            else:
                found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def imported_layers(source: str, package: str) -> set[str]:
    """The layers of triolette (``core``, ``stores``...) that ``source`` imports from."""
    layers = set()
    for name in imported_modules(source, package):
        parts = name.split(".")
        if parts[0] == "triolette":
            layers.add(parts[1] if len(parts) > 1 else "<top level>")
    return layers


def _package_of(path: Path) -> str:
    folder = path.parent.relative_to(PACKAGE.parent)
    return ".".join(folder.parts)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_run_one_way(layer):
    for path in (PACKAGE / layer).rglob("*.py"):
        wrong = imported_layers(path.read_text(), _package_of(path)) - ALLOWED[layer]
        assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)}"


@pytest.mark.parametrize(
    ("source", "layers"),
    [
        ("from ..runtime.app import App", {"runtime"}),
        ("from .. import runtime", {"runtime"}),
        ("from . import persistence", {"actors"}),
        ("from .persistence import PersistenceActor", {"actors"}),
        ("import triolette.runtime.app", {"runtime"}),
        ("from triolette import App", {"<top level>"}),
        ("import trio", set()),
    ],
)
def test_the_layering_check_resolves_relative_imports(source, layers):
    assert imported_layers(source, "triolette.actors") == layers


def test_the_layering_check_flags_a_relative_import_against_the_layers():
    wrong = imported_layers("from ..runtime.app import App", "triolette.actors") - ALLOWED["actors"]
    assert wrong == {"runtime"}
    with pytest.raises(ValueError, match=r"\.\.\.\.x goes above triolette\.actors"):
        imported_layers("from ....x import y", "triolette.actors")


def _code_words(source: str) -> set[str]:
    """Imported modules, names, attributes and string constants: code, not comments."""
    words: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            words.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            words.add(node.module or "")
            words.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            words.add(node.value)
    return words


def test_production_code_never_asks_which_clock_runs():
    clues = {"MockClock", "trio.testing", "current_clock", "autojump_threshold"}
    assert clues & _code_words("if isinstance(trio.lowlevel.current_clock(), MockClock): ...")
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name != "testing":
            found = clues & _code_words(path.read_text())
            assert not found, f"{path.relative_to(PACKAGE)} uses {sorted(found)}"


def test_stores_are_recognised_by_isinstance(tmp_path):
    class UsersStore:
        def load(self, key: str) -> dict[str, object] | None:
            return None

        def save(self, key: str, data: dict[str, object]) -> None:
            pass

    from triolette.stores import BatchStore, EncodedBatchStore

    built_in = triolette.JsonFileStore(tmp_path / "state.json")
    assert isinstance(built_in, triolette.Store)
    assert isinstance(built_in, BatchStore)
    assert isinstance(built_in, EncodedBatchStore)
    assert isinstance(UsersStore(), triolette.Store)
    assert not isinstance(UsersStore(), BatchStore)
    assert not isinstance(object(), triolette.Store)
    assert not isinstance({"load": None, "save": None}, triolette.Store)


def test_key_in_use_error_is_a_triolette_error_and_still_a_runtime_error():
    error = triolette.KeyInUseError("meter")
    assert isinstance(error, triolette.TrioletteError)
    assert isinstance(error, RuntimeError)
    assert error.key == "meter"
    assert str(error) == "meter: another running device store already owns this key"


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
