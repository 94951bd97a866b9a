"""The package's shape (issue 20): an import graph without cycles (also through imports inside functions), and
one way per thing (one device resolver, random streams derived one way). Static: the modules are parsed, not
imported, so this costs no torch import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "percept"

def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _module_level(tree: ast.Module) -> list[ast.AST]:
    """Statements run when the module is imported: the body, and the bodies of module-level if/try blocks
    (not ``if TYPE_CHECKING:``, not functions or classes' methods)."""
    out, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.If):
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                continue
            stack += node.body + node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
    return out


def import_graph(call_time: bool) -> dict[str, set[str]]:
    """module -> the percept modules it imports (at import time, or also inside functions)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        nodes = list(ast.walk(tree)) if call_time else _module_level(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in MODULES and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports():
    graph = import_graph(call_time=False)
    assert len(MODULES) > 50 and "percept.checkpoints" in graph["percept.mpcs.pretrain"]
    assert "percept.data.store" in graph["percept.data.bapps"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycle_among_percept_modules():
    """Importing any percept module never re-enters a module that is still being imported."""
    assert cycles(import_graph(call_time=False)) == []


def test_no_call_time_import_cycle():
    """Nor through imports inside functions (run at call time): the config's semantic checks call the stages'
    checks, which import percept.checks and percept.plan, never percept.config; the figure renderers register
    with percept.figures.registry, not with the package that imports them."""
    graph = import_graph(call_time=True)
    assert "percept.loss_networks.checks" in graph["percept.config"]  # the graph sees imports inside functions
    assert cycles(graph) == []


def test_plan_and_config_sit_below_the_stages():
    """percept.plan and percept.config import no stage module that could import them back: only the registries
    and the checks (percept.checks, percept.plan, the stages' ``checks`` modules)."""
    graph = import_graph(call_time=True)
    reach = {}
    for start in ("percept.plan", "percept.config"):
        seen, stack = set(), [start]
        while stack:
            for m in graph[stack.pop()] - seen:
                seen.add(m)
                stack.append(m)
        reach[start] = seen
    assert "percept.config" not in reach["percept.plan"]
    stages = ("explain", "similarity", "translation", "mpcs", "loss_networks", "autoencoders")
    heavy = {m for m in reach["percept.plan"] | reach["percept.config"]
             if m.split(".")[1:2] and m.split(".")[1] in stages and not m.endswith((".checks", ".registry"))
             and m not in ("percept.autoencoders", "percept.mpcs", "percept.translation", "percept.loss_networks")}
    assert heavy == set()


def _sources(exclude: tuple[str, ...] = ()) -> dict[str, str]:
    return {p.relative_to(REPO).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")
            if not any(p.relative_to(REPO).as_posix().startswith(e) for e in exclude)}


def test_one_device_resolver():
    """Only percept.features.resolve_device decides between CUDA and the CPU (workflow.py logs the GPU)."""
    asks = {path for path, text in _sources().items() if "cuda.is_available" in text}
    assert asks == {"src/percept/features.py", "src/percept/workflow.py"}


def test_random_streams_are_derived_one_way():
    """No stage derives a generator from the seed by hand (``default_rng([seed, 41, …])``, ``seed * 10007 +
    epoch``, ``seed + 991``, ``self.bank.seed + 7919``): percept.seeds names every stream, the explanation
    stage's included."""
    pattern = re.compile(r"default_rng\(\[|SeedSequence\(\[|manual_seed\([\w.]*seed\w* *[*+]")
    bad = {path: pattern.findall(text) for path, text in _sources().items()
           if path != "src/percept/seeds.py" and pattern.search(text)}
    assert bad == {}
