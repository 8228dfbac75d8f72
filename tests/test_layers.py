"""The import layering of la_keras, launch and bench, read with `ast`.

Every `.py` file under la_keras/, launch/ and bench/ is parsed (nothing is
imported) into a graph of modules: a package is the node of its
`__init__.py`, a file of bench/ (not a package; its scripts import each
other by bare name, `import loop_overhead`) is `bench.<name>`. An edge
A -> B is an import statement in A naming B, at module level or inside a
function alike; imports under `if TYPE_CHECKING:` never run and do not
count, nor do imports of modules outside the three folders.

How an import names its module:

- `import a.b.c` imports `a.b.c`. The parents `a` and `a.b` that Python
  initialises on the way are not edges: every submodule would otherwise
  form a cycle with the `__init__` that imports it.
- `from pkg import name` imports `pkg.name` when that is a module, else
  `pkg`; `from . import x` and other relative forms are resolved first.
- A name that a package `__init__` merely re-exports (`from pkg.sub import
  name` in it, or an entry `"name": "pkg.sub"` / `("pkg.sub", attr)` of its
  lazy `__getattr__` table) resolves to the module that defines it:
  `from la_keras.losses import LogitAdjustedLoss` is an edge to
  `la_keras.losses.logit_adjusted`, not to `la_keras.losses`; the modules
  of a lazy table are also edges of the `__init__` itself (its
  `__getattr__` imports them, a function-level import). So a cycle
  through an `__init__` is reported only when it is a real cycle between
  modules: when something imports the package itself (`from la_keras
  import losses`, a name the `__init__` defines) and one of the modules
  that `__init__` imports leads back to the importer.
- `importlib.import_module("literal")` counts as an import of `literal`.

Asserted: (a) no import cycle among la_keras modules, nor among launch
modules (the failure names each cycle's path), except the cycles of
la_keras.runs and launch listed in `KNOWN_CYCLES` (owned elsewhere; an
entry that no longer occurs must be removed); (b) no la_keras module
imports launch or bench; (c) la_keras.datasets, la_keras.losses and
la_keras.layers import none of la_keras.training, la_keras.models,
la_keras.runs, la_keras.serving, la_keras.serving_signature and
la_keras.tflite_*.
"""

from __future__ import annotations

import ast
import functools
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ("la_keras", "launch", "bench")

# Cycles in la_keras.runs and launch known today (each the set of modules
# of one strongly connected component), left to their owners: expected
# failures of `test_no_import_cycles`. None today; an entry looks like
# frozenset({"la_keras.runs.common", "la_keras.runs.run_state"}).
KNOWN_CYCLES: set[frozenset[str]] = set()

LOW_LEVEL = ("la_keras.datasets", "la_keras.losses", "la_keras.layers")
HIGH_LEVEL = (
    "la_keras.training",
    "la_keras.models",
    "la_keras.runs",
    "la_keras.serving",
    "la_keras.serving_signature",
    "la_keras.tflite_",  # a prefix: tflite_export, tflite_classifier
)


def _within(module: str, prefix: str) -> bool:
    if prefix.endswith("_"):
        return module.startswith(prefix)
    return module == prefix or module.startswith(prefix + ".")


@functools.lru_cache(maxsize=1)
def _sources() -> dict[str, tuple[ast.Module, bool]]:
    """`{module: (its parsed file, whether it is a package __init__)}`."""
    sources = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            sources[".".join(parts)] = (tree, is_package)
    return sources


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(node: ast.AST):
    """Every import node and `import_module` call below `node`."""
    for child in ast.iter_child_nodes(node):
        if _is_type_checking(child):
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif (
            isinstance(child, ast.Call)
            and isinstance(child.func, (ast.Attribute, ast.Name))
            and getattr(child.func, "attr", getattr(child.func, "id", None))
            == "import_module"
            and child.args
            and isinstance(child.args[0], ast.Constant)
            and isinstance(child.args[0].value, str)
        ):
            yield child
        yield from _imports(child)


def _base(module: str, node: ast.ImportFrom) -> str:
    """The absolute module of a `from X import ...` in `module`."""
    if not node.level:
        return node.module or ""
    _, is_package = _sources()[module]
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _local(module: str, name: str) -> str:
    """A bench script's bare `import sibling` as `bench.sibling`."""
    if module.startswith("bench.") and f"bench.{name}" in _sources():
        return f"bench.{name}"
    return name


@functools.cache
def _exports(package: str) -> dict[str, str]:
    """The names a package `__init__` re-exports, and their modules.

    From its module-level `from X import name` statements and its lazy
    tables (a module-level dict of name -> "module" or ("module", attr)).
    """
    tree, is_package = _sources()[package]
    exports = {}
    if not is_package:
        return exports
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = _base(package, node)
            for alias in node.names:
                if alias.name != "*" and base != package:
                    target = _resolve_from(package, base, alias.name)
                    if target is not None:
                        exports[alias.asname or alias.name] = target
    exports.update(_lazy(package))
    return exports


@functools.cache
def _lazy(package: str) -> dict[str, str]:
    """A package `__init__`'s lazy tables: name -> the module it loads.

    Module-level dicts of name -> "module" or ("module", attr) naming
    modules of the three folders; its `__getattr__` imports them, so they
    are (function-level) imports of the `__init__` too.
    """
    tree, is_package = _sources()[package]
    lazy = {}
    for node in tree.body if is_package else ():
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
            node.value, ast.Dict
        ):
            for key, value in zip(
                node.value.keys, node.value.values, strict=True
            ):
                if isinstance(value, ast.Tuple) and value.elts:
                    value = value.elts[0]
                if (
                    isinstance(key, ast.Constant)
                    and isinstance(value, ast.Constant)
                    and value.value in _sources()
                ):
                    lazy[key.value] = value.value
    return lazy


def _resolve_from(module: str, base: str, name: str) -> str | None:
    """The module that `from base import name` in `module` imports."""
    sources = _sources()
    base = _local(module, base)
    if f"{base}.{name}" in sources:
        return f"{base}.{name}"
    if base not in sources:
        return None
    if base != module and name in _exports(base):
        return _exports(base)[name]
    return base


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    sources = _sources()
    graph = {}
    for module, (tree, _) in sources.items():
        edges = set()
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                names = [_local(module, a.name) for a in node.names]
                edges.update(n for n in names if n in sources)
            elif isinstance(node, ast.Call):
                if node.args[0].value in sources:
                    edges.add(node.args[0].value)
            else:
                base = _base(module, node)
                for alias in node.names:
                    name = "" if alias.name == "*" else alias.name
                    target = _resolve_from(module, base, name)
                    if target is not None:
                        edges.add(target)
        edges.update(_lazy(module).values())
        edges.discard(module)
        graph[module] = edges
    return graph


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(start):
        # Tarjan's algorithm, iterative (no recursion limit).
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> str:
    """A shortest cycle through the component's first module, as a path."""
    members, start = set(component), component[0]
    previous, frontier = {start: None}, [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [start]
                    while node is not None:
                        path.append(node)
                        node = previous[node]
                    return " -> ".join(reversed(path))
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def _subgraph(prefix: str) -> dict[str, set[str]]:
    graph = _graph()
    return {
        module: {m for m in edges if _within(m, prefix)}
        for module, edges in graph.items()
        if _within(module, prefix)
    }


def _is_known_territory(component: list[str]) -> bool:
    return any(
        _within(m, "la_keras.runs") or _within(m, "launch") for m in component
    )


def test_graph_sees_the_packages():
    graph = _graph()
    assert "la_keras.models.registry" in graph
    assert "la_keras.datasets.prepared" in graph["la_keras.datasets"]
    assert "bench.loop_overhead" in graph["bench.bench_backends"]


def test_no_import_cycles():
    problems, seen_known = [], set()
    for prefix in ("la_keras", "launch"):
        graph = _subgraph(prefix)
        for component in _components(graph):
            key = frozenset(component)
            if key in KNOWN_CYCLES and _is_known_territory(component):
                seen_known.add(key)
                continue
            problems.append(
                f"import cycle among {len(component)} modules: "
                f"{_cycle_path(graph, component)}\n  (all of: "
                f"{', '.join(component)})"
            )
    problems.extend(
        "known cycle no longer found; remove it from KNOWN_CYCLES: "
        + ", ".join(sorted(stale))
        for stale in KNOWN_CYCLES - seen_known
    )
    assert not problems, "\n".join(problems)


def test_la_keras_imports_no_launch_or_bench():
    bad = sorted(
        f"{module} imports {target}"
        for module, edges in _graph().items()
        if _within(module, "la_keras")
        for target in edges
        if _within(target, "launch") or _within(target, "bench")
    )
    assert not bad, "\n".join(bad)


def test_data_losses_layers_import_nothing_above_them():
    bad = sorted(
        f"{module} imports {target}"
        for module, edges in _graph().items()
        if any(_within(module, low) for low in LOW_LEVEL)
        for target in edges
        if any(_within(target, high) for high in HIGH_LEVEL)
    )
    assert not bad, "\n".join(bad)
