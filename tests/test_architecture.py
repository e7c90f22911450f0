"""The import contract: every tl_traits import points down the rooms in docs/architecture.md, with no cycles.

Walks the source with `ast` (imports inside functions included, so a deferred import cannot hide an
upward edge), maps `plugins/` to `tl_traits.plugins`, and names each offending import with its file and line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = {"tl_traits": REPO / "tl_traits", "tl_traits.plugins": REPO / "plugins"}

DOMAINS = ("extraction", "judging", "steering", "monitoring", "quantization", "training", "saes", "interop")
# room -> the rooms it may import from (besides itself). Everything may use core.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "extraction": {"core"},
    "judging": {"core"},
    "training": {"core"},
    "saes": {"core"},
    "interop": {"core"},
    "steering": {"core", "judging"},
    "monitoring": {"core", "judging"},
    "quantization": {"core", "extraction", "judging", "steering"},
    "plugins": {"core", *DOMAINS},
    "scale": {"core", *DOMAINS},
    "app": {"core", *DOMAINS, "scale"},
}
# Large modules kept whole on purpose, with the reason; every other module stays under the limit.
MAX_LINES = 400
LARGE_MODULES: dict[str, str] = {}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module (the longest known module prefix of the import)
    line: int
    names: tuple[str, ...]
    type_only: bool = False  # under `if TYPE_CHECKING:`: a type reference, no import at run time

    def where(self) -> str:
        return f"{self.source} (line {self.line}) imports {self.target}"


def _module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if prefix == "tl_traits" and parts[:1] == ["plugins"]:
                continue
            modules[name] = path
    return modules


MODULES = _module_files()


def _resolve(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(tree: ast.AST, type_only: bool = False):
    """Every import statement with whether it sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_only
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _imports(ast.Module(body=node.body, type_ignores=[]), True)
            yield from _imports(ast.Module(body=node.orelse, type_ignores=[]), type_only)
        else:
            yield from _imports(node, type_only)


def _edges(module: str, path: Path) -> list[Edge]:
    edges = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node, type_only in _imports(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [(a.name, ()) for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import module` imports the module itself
            targets = [
                (f"{base}.{a.name}", (a.name,)) if f"{base}.{a.name}" in MODULES else (base, (a.name,))
                for a in node.names
            ]
        for target, names in targets:
            if not target.startswith("tl_traits"):
                continue
            resolved = _resolve(target)
            if resolved and resolved != module:
                edges.append(Edge(module, resolved, node.lineno, names, type_only))
    return edges


EDGES = [edge for module, path in MODULES.items() for edge in _edges(module, path)]


def room(module: str) -> str:
    parts = module.split(".")
    if module == "tl_traits":
        return "facade"
    return parts[1]


def test_every_module_is_in_a_room() -> None:
    strays = sorted(m for m in MODULES if room(m) not in ALLOWED and room(m) != "facade")
    assert not strays, f"modules outside the rooms of docs/architecture.md: {strays}; move them into one"


def test_imports_point_down() -> None:
    upward = [
        e.where() + f" ({room(e.source)} may not import {room(e.target)})"
        for e in EDGES
        if room(e.source) != "facade"
        and room(e.target) != room(e.source)
        and room(e.target) not in ALLOWED[room(e.source)]
    ]
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_no_plugin_imports_another_plugin() -> None:
    """What plugins share lives in a domain under a public name, where an outside plugin author can use it too."""
    sideways = [
        e.where()
        for e in EDGES
        if e.source.startswith("tl_traits.plugins.")
        and e.target.startswith("tl_traits.plugins.")
        and e.source.split(".")[:4] != e.target.split(".")[:4]
        and not _own_catalogue(e.source, e.target)
    ]
    assert not sideways, "plugins importing plugins (move the shared code into a domain):\n" + "\n".join(sideways)


def _own_catalogue(source: str, target: str) -> bool:
    """A plugin may read its own folder's catalogue (the PluginInfo records its entry points name): no plugin."""
    return target.endswith(".catalogue") and source.split(".")[:3] == target.split(".")[:3]


def test_nothing_imports_the_facade() -> None:
    inward = [e.where() for e in EDGES if e.target == "tl_traits"]
    assert not inward, "import from the module that holds it, not from the tl_traits facade:\n" + "\n".join(inward)


def test_no_private_names_across_modules() -> None:
    private = [e.where() + f": {n}" for e in EDGES for n in e.names if n.startswith("_") and not n.startswith("__")]
    assert not private, (
        "private names imported from another module; make them public or move the caller:\n" + "\n".join(private)
    )


def _cycles() -> list[list[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in EDGES:
        if room(e.source) != "facade" and not e.type_only:  # a type-only reference cannot loop at run time
            graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    cycles = _cycles()
    assert not cycles, "modules that import each other (directly or around a loop):\n" + "\n".join(map(str, cycles))


def test_modules_stay_small() -> None:
    large = {
        m: n
        for m, p in MODULES.items()
        if (n := len(p.read_text().splitlines())) > MAX_LINES and m not in LARGE_MODULES
    }
    assert not large, f"modules over {MAX_LINES} lines; split them by job or list the reason in LARGE_MODULES: {large}"


@pytest.mark.parametrize(
    "source, target, allowed",
    [
        ("core", "steering", False),
        ("steering", "judging", True),
        ("judging", "steering", False),
        ("app", "scale", True),
    ],
)
def test_the_contract_itself(source: str, target: str, allowed: bool) -> None:
    assert (target in ALLOWED[source]) is allowed


def test_the_walker_sees_deferred_imports(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from tl_traits.core import files\n")
    assert [e.target for e in _edges("tl_traits.core.stats", path)] == ["tl_traits.core.files"]


def test_the_walker_marks_type_only_imports(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tl_traits.core import files\n"
        "from tl_traits.core import stats\n"
    )
    assert [(e.target, e.type_only) for e in _edges("tl_traits.core.vectors", path)] == [
        ("tl_traits.core.files", True),
        ("tl_traits.core.stats", False),
    ]


FACADE_NAMES = {  # what `from tl_traits import ...` offered before the rooms; users' scripts rely on them
    "ActivationSet",
    "ModelIdentity",
    "ModelLoadError",
    "PreparedInputs",
    "PromptError",
    "Spans",
    "TraitDataset",
    "TraitExample",
    "TraitVector",
    "TraitVectors",
    "attacks",
    "capture",
    "extract",
    "extractors",
    "generate",
    "generate_responses",
    "hook_name",
    "judges",
    "list_traits",
    "load_model",
    "load_trait",
    "make_judge",
    "model_identity",
    "monitor",
    "viz",
    "parse_hook_name",
    "prepare_inputs",
    "quantizers",
    "evaluate_steering",
    "Setting",
    "steer",
    "sweep_generate",
    "poison",
    "detect_poison",
    "TrainConfig",
    "train",
}


def test_the_facade_keeps_its_names() -> None:
    import tl_traits as tt

    assert FACADE_NAMES <= set(tt.__all__)
    assert all(hasattr(tt, name) for name in tt.__all__)
    assert callable(tt.monitor) and callable(tt.monitoring.project) and callable(tt.viz.token_projections)
    with pytest.warns(DeprecationWarning, match="use tt.monitoring.analyze_prompt_set"):
        assert tt.monitor.analyze_prompt_set is tt.monitoring.analyze_prompt_set  # the old module path, one release


NAMESPACES = ("training", "saes", "quantization", "scale", "judging", "monitoring", "steering")


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_each_namespace_resolves_every_curated_name_to_its_module(namespace: str) -> None:
    """tt.<namespace>.<name> is the very object its module holds, and the namespace is in the facade."""
    import importlib

    import tl_traits as tt

    package = getattr(tt, namespace)
    assert package is importlib.import_module(f"tl_traits.{namespace}") and namespace in tt.__all__
    for name, target in package.EXPORTS.items():
        module, _, attribute = target.partition(":")
        expected = getattr(importlib.import_module(module), attribute) if attribute else importlib.import_module(module)
        assert getattr(package, name) is expected, f"tt.{namespace}.{name}"
        assert name in dir(package)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        package.nope  # noqa: B018


def test_every_package_is_listed_for_installation() -> None:
    """pyproject lists packages by hand (plugins/ is mapped into tl_traits); a package left out
    would be missing from a wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert packages <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(packages - listed)}"


def _map_sections() -> dict[str, str]:
    """docs/architecture.md's module map, per room: the core table's text, and each room's table row."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    core = text.split("### core", 1)[1].split("### domains", 1)[0]
    rooms = {"core": core}
    for line in text.splitlines():
        if line.startswith("| `") and "/` |" in line.split("|")[1] + "|":
            rooms[line.split("`")[1].rstrip("/")] = line
    plugins = text.split("### plugins", 1)[1].split("## Where", 1)[0]
    rooms["plugins"] = plugins
    return rooms


def test_the_architecture_map_lists_every_module():
    """Every module file under tl_traits/ and every plugin appears in docs/architecture.md under its room."""
    rooms = _map_sections()
    missing = []
    for name, path in MODULES.items():
        parts = name.split(".")
        if path.name == "__init__.py" and parts[-1] != "cli":
            continue  # a package's own __init__ (the facade, a room) is described in prose
        if parts[1] == "plugins" or len(parts) < 3:
            continue  # plugins: checked by name below
        room, file = parts[1], path.name if path.name != "__init__.py" else f"{parts[-1]}/"
        if room not in rooms or f"`{file}`" not in rooms[room]:
            missing.append(name)
    for path in (REPO / "plugins").glob("*/*.py"):
        if not path.name.startswith("_") and path.stem.replace("_", "-") not in rooms["plugins"].replace("_", "-"):
            missing.append(f"plugins/{path.parent.name}/{path.name}")
    assert not missing, f"docs/architecture.md's module map does not list: {sorted(missing)}"
