"""The layers show in the packages, and each imports only those it stands on: a newcomer can
trust the folder a thing is in, and a composition root (``Domain``) is never imported back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import smarter_domain

PACKAGE = Path(smarter_domain.__file__).parent

ALLOWED = {
    "model": {"model"},
    "integrations": {
        "model",
        "services",
        "integrations",
        "domain",
        "domain_async",
        "aio",
        "settings",
    },
    "adapters": {"model", "adapters"},
    "cache": {"model", "cache"},
    "services": {"model", "adapters", "cache", "services"},
}
"""What each layer may import from the library (anything else, at run time or for typing)."""

ROOTS = {
    "smarter_domain.domain": {
        "smarter_domain",
        "smarter_domain.api",
        "smarter_domain.entrypoints.cli",
        "smarter_domain.integrations.flask",
        "smarter_domain.domain_async",  # the async root wraps a sync one
    },
    "smarter_domain.domain_async": {
        "smarter_domain",
        "smarter_domain.aio",
        "smarter_domain.integrations.asgi",
        "smarter_domain.integrations.fastapi",
        "smarter_domain.integrations.litestar",
    },
}
"""The only modules of the library (besides ``testing``) that import each composition root:
entry points, which build one."""


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each module of the library, and the library modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        found = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
                names = [f"{target}.{alias.name}" for alias in node.names]
                found.update([target, *names] if node.module is None else [target])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "smarter_domain"
            ):
                found.add(str(node.module))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("smarter_domain"))
    return graph


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_it_stands_on(layer: str) -> None:
    wrong = {
        (module, target)
        for module, targets in _imports().items()
        if _layer(module) == layer
        for target in targets
        if target != "smarter_domain" and _layer(target) not in ALLOWED[layer]
    }
    assert not wrong, f"{layer} imports {sorted(wrong)}"


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_nothing_imports_the_composition_root_back(root: str) -> None:
    importers = {
        module
        for module, targets in _imports().items()
        if root in targets and _layer(module) != "testing"
    }
    assert importers <= ROOTS[root], sorted(importers - ROOTS[root])


def test_the_graph_is_read() -> None:
    """The checks above look at something: the graph has the edges everyone knows of."""
    graph = _imports()
    assert "smarter_domain.model.errors" in graph["smarter_domain.model.entities"]
    assert "smarter_domain.services.unit_of_work" in graph["smarter_domain.domain"]
    assert "smarter_domain.domain" in graph["smarter_domain.api"]
    assert "smarter_domain.domain" in graph["smarter_domain.domain_async"]
    assert "smarter_domain.domain_async" in graph["smarter_domain.integrations.fastapi"]
