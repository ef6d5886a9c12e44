"""The package's layout rules (docs/architecture.md), checked with ``ast`` over bids_dfc/.

Each test names the rule it keeps; a failure lists every offending place. Imports inside
functions count too (they are where an upward import would hide).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bids_dfc"

#: R3 ranks: a module may import only from its own rank or lower ones (never upward)
RANKS = {
    "cli": 6,
    "workflows": 5, "group": 5,
    "interfaces": 4, "reports": 4,
    "connectivity": 3, "inputs": 3,
    "preproc": 2, "stats": 2, "dfc": 2, "demo": 2, "templates": 2, "derivatives": 2,
    "config": 2,
    "io": 1, "errors": 1,
}  # fmt: skip
#: R1 packages (and modules) that must never reach nipype, directly or through imports
NIPYPE_FREE = ("preproc", "connectivity", "dfc", "stats", "inputs", "group", "io", "config",
               "derivatives", "errors")
#: R5 names of study parameters that must not get a literal default outside config.py
STUDY_PARAMETERS = {
    "fwhm", "smoothing_fwhm", "band", "band_pass", "high_pass", "low_pass", "n_components",
    "acompcor_components", "components", "confounds", "confound_groups", "groups",
    "dummy_scans", "mode", "dcc_mode", "n_boot", "pair", "random_seed", "seed",
    "responder_threshold", "max_mean_fd", "network_weighting", "seed_space",
}
#: R5 places with their own library defaults: the DCC estimators (own CLI and API), the demo
EXEMPT_DEFAULTS = ("config.py", "dfc/", "demo/", "cli/dcc.py", "cli/demo.py")
#: R7 nipype Function-node bodies run in a fresh namespace: their imports must be inside
FUNCTION_NODE_BODIES: set[str] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(_modules()[name].read_text(encoding="utf-8"))


def _imports(name: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module top) for every import in module ``name``."""
    path = _modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = {id(n) for n in _tree(name).body}
    out = []
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{a.name}" for a in node.names
                          if f"{target}.{a.name}" in _modules()]
            # ``from package import submodule`` imports the submodule, not the package's names
            if len(submodules) < len(node.names):
                out.append((target, node.lineno, id(node) in top))
            out += [(sub, node.lineno, id(node) in top) for sub in submodules]
    return out


def _own(target: str) -> str | None:
    """The package module that ``target`` names (its longest known prefix), if any."""
    parts = target.split(".")
    while parts:
        if ".".join(parts) in _modules():
            return ".".join(parts)
        parts.pop()
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in _modules():
        deps = {_own(t) for t, _, _ in _imports(name)}
        graph[name] = {d for d in deps if d and d != name and d != "bids_dfc"}
        # importing a submodule runs its package's __init__, which is not an edge of interest
    return graph


def _area(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _rel(name: str) -> str:
    return str(_modules()[name].relative_to(PACKAGE))


def test_r1_nipype_free_packages_never_reach_nipype():
    graph = _graph()
    problems = []
    for start in (m for m in _modules() if _area(m) in NIPYPE_FREE):
        seen, stack, via = {start}, [start], {start: [start]}
        while stack:
            mod = stack.pop()
            for target, line, _ in _imports(mod):
                if target.split(".")[0] == "nipype":
                    problems.append(f"{_rel(start)} reaches nipype: {' -> '.join(via[mod])} "
                                    f"(line {line} of {_rel(mod)})")
            for dep in graph[mod] - seen:
                seen.add(dep)
                via[dep] = via[mod] + [dep]
                stack.append(dep)
    assert not problems, "\n".join(sorted(set(problems)))


def test_r2_no_import_cycle():
    """Tarjan's strongly connected components over the module graph: all of size one."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    # a package's modules importing each other inside one package (dfc/, demo/) are a
    # design of their own only if acyclic too: no exemption
    assert not cycles, f"import cycles: {cycles}"


def test_r3_no_import_runs_upward():
    problems = []
    for name in _modules():
        rank = RANKS.get(_area(name))
        for target, line, _ in _imports(name):
            dep = _own(target)
            if not dep or dep == "bids_dfc" or _area(dep) == _area(name):
                continue
            if rank is not None and RANKS.get(_area(dep), 0) > rank:
                problems.append(f"{_rel(name)}:{line} ({_area(name)}, rank {rank}) imports "
                                f"{dep} (rank {RANKS[_area(dep)]})")
    assert not problems, "\n".join(problems)


def test_ranks_cover_every_area():
    areas = {_area(m) for m in _modules()} - {"bids_dfc", "__init__"}
    assert areas <= set(RANKS), f"areas without a rank: {sorted(areas - set(RANKS))}"


def _calls(name: str):
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Call):
            func = node.func
            dotted = []
            while isinstance(func, ast.Attribute):
                dotted.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                dotted.append(func.id)
            yield ".".join(reversed(dotted)), node


def test_r4_only_io_makes_temporary_files_or_renames_outputs():
    forbidden = {"mkstemp", "NamedTemporaryFile", "mkdtemp_for_outputs", "replace", "rename"}
    problems = []
    for name in _modules():
        if name == "bids_dfc.io":
            continue
        for dotted, node in _calls(name):
            last = dotted.rsplit(".", 1)[-1]
            if last in {"mkstemp", "NamedTemporaryFile"} or dotted in {
                "os.replace", "os.rename", "shutil.move"
            } or (last in {"rename", "replace"} and dotted.startswith(("Path", "path"))):
                problems.append(f"{_rel(name)}:{node.lineno} calls {dotted}")
    assert forbidden  # the rule's vocabulary, kept next to the check
    assert not problems, "\n".join(problems)


def _literal(node: ast.AST | None) -> bool:
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return node.value is not None and not isinstance(node.value, bool)
    if isinstance(node, (ast.Tuple, ast.List)):
        return bool(node.elts) and all(_literal(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    return False


def test_r5_study_defaults_only_in_config():
    problems = []
    for name in _modules():
        rel = _rel(name)
        if rel.startswith(EXEMPT_DEFAULTS):
            continue
        for node in ast.walk(_tree(name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                positional = args.posonlyargs + args.args
                pairs = list(zip(positional[len(positional) - len(args.defaults):],
                                 args.defaults, strict=True))
                pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults,
                                                 strict=True) if d is not None]
                problems += [f"{rel}:{node.lineno} {node.name}({a.arg}={ast.unparse(d)})"
                             for a, d in pairs if a.arg in STUDY_PARAMETERS and _literal(d)]
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                # nipype traits: ``fwhm = traits.Float(4.0, usedefault=True)``
                target = node.targets[0]
                call = node.value
                if not (isinstance(target, ast.Name) and target.id in STUDY_PARAMETERS):
                    continue
                if not ast.unparse(call.func).startswith("traits."):
                    continue
                if any(k.arg == "mandatory" and getattr(k.value, "value", False)
                       for k in call.keywords):
                    continue  # a mandatory trait has no default: the builder sets it
                default = next((k.value for k in call.keywords if k.arg == "default"),
                               call.args[0] if call.args else None)
                if _literal(default):
                    problems.append(f"{rel}:{node.lineno} trait {target.id} = "
                                    f"{ast.unparse(call)}")
    assert not problems, "literal study defaults outside config.py:\n" + "\n".join(problems)


def _length(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def _is_graph_builder(node: ast.FunctionDef) -> bool:
    return node.name.startswith("init_") and node.name.endswith("_wf")


def test_r6_no_function_over_80_lines_builders_up_to_120():
    problems = []
    for name in _modules():
        for node in ast.walk(_tree(name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                limit = 120 if _is_graph_builder(node) else 80
                if _length(node) > limit:
                    problems.append(f"{_rel(name)}:{node.lineno} {node.name} is "
                                    f"{_length(node)} lines (limit {limit})")
    assert not problems, "\n".join(problems)


def test_r7_own_package_imports_at_module_top():
    """Except cli/ (start-up time: each command imports what it runs) and Function-node
    bodies (nipype runs them in a fresh namespace)."""
    problems = []
    for name in _modules():
        if _area(name) == "cli":
            continue
        for node in ast.walk(_tree(name)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.name in FUNCTION_NODE_BODIES:
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    own = (inner.module or "").startswith("bids_dfc") or inner.level > 0
                    what = inner.module
                elif isinstance(inner, ast.Import):
                    own = any(a.name.split(".")[0] == "bids_dfc" for a in inner.names)
                    what = ", ".join(a.name for a in inner.names)
                else:
                    continue
                if own:
                    problems.append(f"{_rel(name)}:{inner.lineno} imports {what} inside "
                                    f"{node.name}()")
    assert not problems, "\n".join(problems)


def test_r8_no_module_over_400_lines():
    problems = [f"{_rel(n)}: {len(p.read_text().splitlines())} lines"
                for n, p in _modules().items() if len(p.read_text().splitlines()) > 400]
    assert not problems, "\n".join(problems)


def test_r9_interfaces_workflows_and_config_imports():
    problems = []
    for name in _modules():
        area = _area(name)
        for target, line, _ in _imports(name):
            dep = _own(target) or ""
            if area == "interfaces" and _area(dep) == "interfaces" and dep not in {
                    "bids_dfc.interfaces.bids", "bids_dfc.interfaces", name}:
                problems.append(f"{_rel(name)}:{line} imports {dep} (interfaces import only "
                                "interfaces/bids.py)")
            if area == "workflows" and _area(dep) in {"reports", "config"}:
                problems.append(f"{_rel(name)}:{line} imports {dep} (workflows build graphs)")
            if dep == "bids_dfc.config" and area not in {"cli", "config"}:
                problems.append(f"{_rel(name)}:{line} imports config (only cli/ does)")
    assert not problems, "\n".join(problems)


def test_rules_catch_what_they_claim(tmp_path):
    """The checks themselves: a tiny package breaking each rule is caught."""
    bad = ast.parse(
        "import os\n"
        "def f(fwhm=4.0, *, mode='pairwise', n_boot=None):\n"
        "    os.replace('a', 'b')\n"
        "    from bids_dfc import io\n"
    )
    func = bad.body[1]
    args = func.args
    assert _literal(args.defaults[0]) and _literal(args.kw_defaults[0])
    assert not _literal(args.kw_defaults[1])
    calls = [ast.unparse(n.func) for n in ast.walk(bad) if isinstance(n, ast.Call)]
    assert "os.replace" in calls
    long_func = ast.parse("def g():\n" + "    x = 1\n" * 90).body[0]
    assert _length(long_func) == 91 > 80


def test_docs_table_of_imports_matches_the_code():
    """docs/architecture.md shows the folder imports; scripts/architecture_picture.py
    regenerates the table and the picture from the code: rerun it when this fails."""
    import importlib.util

    script = PACKAGE.parent / "scripts" / "architecture_picture.py"
    spec = importlib.util.spec_from_file_location("architecture_picture", script)
    picture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(picture)
    doc = picture.DOC.read_text(encoding="utf-8")
    current = doc.split(picture.BEGIN, 1)[1].split(picture.END, 1)[0].strip()
    assert current == picture.edge_table(picture.area_edges()), (
        "docs/architecture.md is stale: run python scripts/architecture_picture.py")
