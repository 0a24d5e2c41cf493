"""The dependency picture, enforced: which layer may import which, read from the source (AST) of every .py file.

The check walks every `import` statement, at module level and inside functions alike, so a lazy import cannot hide a
dependency. The layers (see README.md, "Layout"):

    app.py    composition root: may import everything; nothing imports it (tests excepted: they drive app.main)
    cli/      commands: may import reasoning, storage and ui (serve); not demo (the product does not need it)
    ui/       the web UI: may import reasoning and storage; not demo
    storage/  the database: may import reasoning; not ui, cli, demo
    experiments/ runs of a problem set (execute, record, compare): may import reasoning and storage
    engine/   the vLLM engine launcher (its environment, `engine serve`): may import reasoning; not the layers above
    reasoning/ the core: imports none of the above (the backends reach a server through reasoning/http_client.py)
    demo/     training of the demo models and the scaling report (training code: may use torch)
    bench/    benchmarks (may use torch, to pin threads); tests/ the test suite

Production code (everything outside tests/) never imports tests/, and only the model backends and training code
import torch or transformers, so that the core, the storage, the UI and `python app.py --help` start without them.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", "__pycache__", "node_modules", "test-artifacts", "data"}
TEST_MODULES = ("tests", *sorted(p.stem for p in (ROOT / "tests").glob("*.py")))  # tests/ is on pytest's path too
HEAVY = ("torch", "transformers", "safetensors.torch", "trl", "peft", "accelerate")
# The packages allowed to import HEAVY: the model backends and the training code (the project's PRM trainer,
# the demo models' training, and the benchmarks, which measure the backends and set their thread counts).
HEAVY_ALLOWED = ("reasoning.backends", "reasoning.training", "demo", "tests", "bench")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name of the file, e.g. "ui.testing"
    target: str  # dotted module name imported, relative imports resolved, e.g. "ui.app"
    where: str  # "path:line"


@dataclass(frozen=True)
class Rule:
    name: str
    importers: tuple[str, ...]  # the rule applies to modules under these packages ...
    exempt: tuple[str, ...]  # ... except those under these (an empty `importers` means every module)
    forbidden: tuple[str, ...]  # and these modules (and their submodules) must not be imported

    def applies_to(self, module: str) -> bool:
        inside = not self.importers or under(module, self.importers)
        return inside and not under(module, self.exempt)


RULES = [
    Rule("reasoning/ imports no ui, storage, experiments, cli, engine, demo, bench or app", ("reasoning",), (),
         ("ui", "storage", "experiments", "cli", "engine", "demo", "bench", "app")),
    Rule("engine/ imports no ui, storage, experiments, cli, demo, bench or app", ("engine",), (),
         ("ui", "storage", "experiments", "cli", "demo", "bench", "app")),
    Rule("storage/ imports no ui, experiments, cli, demo, bench or app", ("storage",), (),
         ("ui", "experiments", "cli", "demo", "bench", "app")),
    Rule("experiments/ imports no ui, cli, demo, bench or app", ("experiments",), (),
         ("ui", "cli", "demo", "bench", "app")),
    Rule("the product (ui/, cli/) imports no demo", ("ui", "cli"), (), ("demo",)),
    Rule("demo/ imports no bench (bench measures with the demo's settings, not the other way round)", ("demo",), (),
         ("bench",)),
    Rule("nothing but the tests imports app", (), ("tests",), ("app",)),
    Rule("production code imports no tests", (), ("tests",), TEST_MODULES),
    Rule("only the backends and training code import torch or transformers", (), HEAVY_ALLOWED, HEAVY),
    Rule("only ui/ imports gradio", (), ("ui", "tests", "bench"), ("gradio",)),
]

# Known violations waiting for their fix, as (importer, target). The test fails when one is fixed but still listed,
# so this list only shrinks. (Empty since the model manifest carries the recommended search settings.)
KNOWN: set[tuple[str, str]] = set()


def under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).parts
        if not any(part.startswith(".") or part in SKIP_DIRS for part in rel[:-1]):
            yield path


def imports_of(module: str, source: str, filename: str, *, is_package: bool = False) -> Iterator[Import]:
    """Every module that `source` imports, anywhere in the file; `from a import b` yields both a and a.b (b may be
    a module), and relative imports are resolved against `module`."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, f"{filename}:{node.lineno}")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield Import(module, base, f"{filename}:{node.lineno}")
            for alias in node.names:
                if alias.name != "*":
                    yield Import(module, f"{base}.{alias.name}" if base else alias.name, f"{filename}:{node.lineno}")


def all_imports() -> list[Import]:
    out = []
    for path in source_files():
        rel = str(path.relative_to(ROOT))
        out += imports_of(module_name(path), path.read_text(encoding="utf-8"), rel, is_package=path.name == "__init__.py")
    return out


def violations(rule: Rule, imports: list[Import]) -> list[Import]:
    return [i for i in imports if rule.applies_to(i.importer) and under(i.target, rule.forbidden)]


def known(i: Import) -> bool:
    return any(i.importer == importer and under(i.target, (target,)) for importer, target in KNOWN)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return all_imports()


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_the_dependency_picture_holds(rule, imports):
    found: dict[str, str] = {}  # where -> the module imported there (not each name taken from it)
    for i in violations(rule, imports):
        if not known(i) and len(i.target) < len(found.get(i.where, i.target + "_")):
            found[i.where] = i.target
    assert not found, f"{rule.name}:\n" + "\n".join(f"  {where} imports {t}" for where, t in found.items())


def test_known_violations_are_still_there(imports):
    """A fixed violation must leave KNOWN, so that it cannot come back unnoticed."""
    seen = {(i.importer, i.target) for rule in RULES for i in violations(rule, imports)}
    fixed = {(importer, target) for importer, target in KNOWN if (importer, target) not in seen}
    assert not fixed, f"fixed, remove from KNOWN: {sorted(fixed)}"


def test_the_scan_sees_lazy_and_relative_imports():
    source = (
        "import os\n"
        "from .app import build_app\n"
        "from . import api\n"
        "def later():\n"
        "    import torch.nn\n"
        "    from ..storage.store import Store\n"
    )
    found = {i.target for i in imports_of("ui.pages.explore", source, "x.py")}
    assert {"os", "ui.pages.app", "ui.pages.app.build_app", "ui.pages.api", "torch.nn", "ui.storage.store"} <= found
    assert {i.target for i in imports_of("ui", "from .app import x", "x.py", is_package=True)} >= {"ui.app"}
    heavy = next(r for r in RULES if "torch" in r.forbidden)
    assert violations(heavy, list(imports_of("storage.store", source, "x.py")))
    assert not violations(heavy, list(imports_of("reasoning.backends.generator", source, "x.py")))


def test_every_layer_is_scanned(imports):
    """The scan finds the files it is meant to judge (a wrong root would pass every rule vacuously)."""
    importers = {i.importer.split(".")[0] for i in imports}
    assert {"app", "reasoning", "storage", "ui", "cli", "engine", "demo", "tests"} <= importers


def _import_time_targets(module: str, source: str, filename: str, is_package: bool) -> set[str]:
    """The modules `source` imports when it is itself imported: module-level statements (inside `if`, `try`,
    `with` and class bodies too), not function bodies and not `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(source, filename)
    kept: list[ast.stmt] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                kept.append(node)
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    visit([n for n in inner if isinstance(n, ast.stmt)] if field != "handlers"
                          else [s for h in inner for s in h.body])

    visit(tree.body)
    return {i.target for i in imports_of(module, ast.unparse(ast.Module(body=kept, type_ignores=[])), filename,
                                         is_package=is_package)}


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules (with their parent packages) and outside modules it loads at import time."""
    files = {module_name(p): p for p in source_files()}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = set()
        for target in _import_time_targets(name, path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)),
                                           path.name == "__init__.py"):
            parts = target.split(".")
            known_prefixes = [".".join(parts[:k]) for k in range(1, len(parts) + 1) if ".".join(parts[:k]) in files]
            targets.update(known_prefixes or [target])
        graph[name] = {t for t in targets if t != name}
    return graph


def _heavy_chain(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """The shortest chain of import-time imports from `start` to torch or transformers, or None."""
    seen, queue = {start: [start]}, [start]
    while queue:
        module = queue.pop(0)
        for target in sorted(graph.get(module, ())):
            if under(target, HEAVY):
                return [*seen[module], target]
            if target in graph and target not in seen:
                seen[target] = [*seen[module], target]
                queue.append(target)
    return None


def test_the_torch_free_layers_stay_torch_free_through_every_import():
    """Importing a module outside the backends and the training code loads no torch, however many imports away:
    the direct check above cannot see `ui` importing `reasoning.backends` for one constant."""
    graph = _import_graph()
    chains = {m: c for m in sorted(graph) if not under(m, HEAVY_ALLOWED) and (c := _heavy_chain(m, graph))}
    assert not chains, "loads torch at import time:\n" + "\n".join(f"  {' -> '.join(c)}" for c in chains.values())


def test_the_transitive_scan_follows_packages_and_skips_lazy_imports():
    graph = {"ui.a": {"reasoning", "reasoning.backends"}, "reasoning.backends": {"torch"}, "reasoning": set(),
             "ui.b": {"reasoning"}}
    assert _heavy_chain("ui.a", graph) == ["ui.a", "reasoning.backends", "torch"]
    assert _heavy_chain("ui.b", graph) is None
    lazy = "import os\nif TYPE_CHECKING:\n    import torch\ndef f():\n    import torch\n"
    assert _import_time_targets("ui.c", lazy, "x.py", False) == {"os"}
