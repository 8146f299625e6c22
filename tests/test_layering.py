"""The dependency direction of docs/architecture.md, read from the source with `ast` (imports inside
functions count too: a lazy import is still a dependency):

    cli → engine → models, losses, data, text, eval, inference → config

`models/ losses/ data/ text/` import neither lightning, typer nor rich; only `engine/` imports lightning;
nothing imports `openseg_cli.cli` but `cli/` itself and `__main__`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "openseg_cli"
PURE_PACKAGES = ("models", "losses", "data", "text")
LIBRARY_PACKAGES = (*PURE_PACKAGES, "eval", "inference", "config")
LIGHTNING = ("lightning", "pytorch_lightning", "lightning_fabric")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    return _imports_of_source(
        path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py"
    )


def _imports_of_source(source: str, module: str, is_package: bool) -> set[str]:
    """Every module `source` imports, absolute (`from . import x` resolved against its package)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                imported = ".".join(base + ([node.module] if node.module else []))
            else:
                imported = node.module or ""
            found.add(imported)
            # `from openseg_cli import cli` imports the sub-package `openseg_cli.cli`
            found.update(f"{imported}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): _imports(p) for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _package_of(module: str) -> str:
    """`openseg_cli.models.clip` → `models`; top-level modules (`openseg_cli.runs`) → their own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _uses(imported: str, target: str) -> bool:
    return imported == target or imported.startswith(target + ".")


def _offenders(packages: tuple[str, ...], targets: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {imported}"
        for module, imports in MODULES.items()
        if _package_of(module) in packages
        for imported in imports
        if any(_uses(imported, t) for t in targets)
    )


def test_the_source_tree_is_found() -> None:
    # Guards the tests below against passing vacuously on an empty walk.
    for package in (*LIBRARY_PACKAGES, "engine", "cli"):
        assert any(_package_of(m) == package for m in MODULES), package
    assert MODULES["openseg_cli.cli.app"], "imports of cli/app.py were not found"
    # Positive controls: the checks below do find imports that exist where they are allowed.
    assert _offenders(("engine",), LIGHTNING)
    assert _offenders(("__main__",), ("openseg_cli.cli",))


def test_the_parser_sees_lazy_and_relative_imports() -> None:
    """Known answer for the import parser itself, on a module shaped like a cli command."""
    source = (
        "import typer\nfrom . import sibling\nfrom ..engine.train import run\n"
        "def command():\n    import torch\n    from openseg_cli import cli\n"
    )
    found = _imports_of_source(source, "openseg_cli.cli.probe", is_package=False)
    assert {
        "typer",
        "openseg_cli.cli.sibling",
        "openseg_cli.engine.train",
        "torch",
        "openseg_cli.cli",
    } <= found
    # In a package's __init__, `.` is the package itself.
    assert "openseg_cli.models.build" in _imports_of_source(
        "from .build import x", "openseg_cli.models", True
    )


@pytest.mark.parametrize("library", ["lightning", "typer", "rich"])
def test_pure_packages_import_no_app_framework(library: str) -> None:
    targets = LIGHTNING if library == "lightning" else (library,)
    assert _offenders(PURE_PACKAGES, targets) == []


def test_only_engine_imports_lightning() -> None:
    others = tuple({_package_of(m) for m in MODULES} - {"engine"})
    assert _offenders(others, LIGHTNING) == []


def test_nothing_imports_the_cli_but_the_cli_and_main() -> None:
    allowed = {"cli", "__main__"}
    packages = tuple({_package_of(m) for m in MODULES} - allowed)
    assert _offenders(packages, ("openseg_cli.cli",)) == []


def test_libraries_do_not_import_engine_or_cli() -> None:
    """eval/ and inference/ (and every package below them) are usable without the training engine."""
    assert _offenders(LIBRARY_PACKAGES, ("openseg_cli.engine", "openseg_cli.cli")) == []


def test_config_depends_on_nothing_but_errors() -> None:
    """config/ is the bottom layer: it may use the error family, nothing else of openseg."""
    offenders = [
        f"{module} imports {imported}"
        for module, imports in MODULES.items()
        if _package_of(module) == "config"
        for imported in imports
        if _uses(imported, "openseg_cli")
        and not any(_uses(imported, ok) for ok in ("openseg_cli.config", "openseg_cli.errors"))
    ]
    assert offenders == []
