"""The layer rules of docs/architecture.md, read from every module's syntax tree."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "jaxembed"

BASE = {"_checks", "_files", "_optional"}
LOW = BASE | {"ops", "_mesh", "keras", "checkpoint", "inspect"}
PARTS = LOW | {"tables", "_spec"}
MODULES = PARTS | {"nn", "linen", "sparse"}

# package -> the jaxembed packages it may import (docs/architecture.md, "The layers").
MAY_IMPORT: dict[str, set[str]] = {
    "_checks": set(),
    "_files": set(),
    "_optional": set(),
    "ops": {"_checks"},
    "_mesh": {"_checks"},
    "keras": {"_checks"},
    "checkpoint": {"_checks", "_files"},
    "inspect": {"_checks"},
    "tables": {"_checks", "ops", "keras"},
    "_spec": {"_checks", "ops", "keras", "tables"},
    "nn": PARTS,
    "linen": PARTS,
    "sparse": {"_checks", "ops"},
    "preprocessing": BASE,  # Keras's categorical layers: host-side and pure jnp, no Flax
    "pretrained": BASE,  # vector files -> tables; NumPy only
    "train": MODULES,
    "sharding": MODULES,
    "keras.io": MODULES | {"preprocessing"},  # lookup vocabularies of .keras archives
    "text": LOW | {"preprocessing"},  # TextVectorizer = standardize -> split -> StringLookup
    "datasets": LOW,
    "viz": LOW,
    "_moved": set(),  # old import paths: names the new homes as strings only
    "__init__": set(),  # the namespace: imports everything (not checked)
}


# Imports across the rules that are known and named (each one a debt to pay, not a pattern).
EXCEPTIONS: set[tuple[str, str]] = set()


def package_of(module: str) -> str:
    """``jaxembed.nn._embedding`` -> ``nn``; ``jaxembed.keras.io._h5`` -> ``keras.io``."""
    parts = module.split(".")[1:]
    if not parts or parts == ["__init__"]:
        return "__init__"
    if parts[0] == "keras" and parts[1:2] == ["io"]:
        return "keras.io"
    return parts[0]


def imports_of(path: Path) -> set[str]:
    """The jaxembed modules ``path`` imports anywhere (top level, functions, TYPE_CHECKING blocks)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module in ("jaxembed", "jaxembed.keras"):
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; write the absolute path")
    return {name for name in found if name == "jaxembed" or name.startswith("jaxembed.")}


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(("jaxembed", *path.relative_to(ROOT).with_suffix("").parts))
        yield path, name.removesuffix(".__init__")


@pytest.mark.parametrize(("path", "name"), list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_each_module_imports_only_the_layers_below_it(path, name):
    own = package_of(name)
    assert own in MAY_IMPORT, f"{name}: package {own!r} is not in docs/architecture.md's table"
    if own == "__init__":
        return
    for imported in imports_of(path):
        target = package_of(imported)
        if target == own:
            continue
        if own == "linen" and target == "nn":
            assert (name, imported) in EXCEPTIONS, f"{name} imports {imported}: linen may not import nn"
            continue
        assert target in MAY_IMPORT[own], (
            f"{name} imports {imported}: package {own!r} may import only {sorted(MAY_IMPORT[own])}"
        )


def test_the_check_would_catch_a_layer_importing_training_code(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from jaxembed.train import Trainer\nimport jaxembed.sparse\n")
    assert {package_of(m) for m in imports_of(bad)} == {"train", "sparse"}
    assert not ({"train", "sparse"} & MAY_IMPORT["nn"])


def test_every_package_on_disk_is_in_the_table_and_the_page():
    page = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for _, name in modules():
        own = package_of(name)
        assert own in MAY_IMPORT, own
        if not own.startswith("_") and own != "__init__":
            assert f"`{own}`" in page, f"docs/architecture.md does not name the package {own!r}"


# ------------------------------------------------ no module-level registry in the forward path
FORWARD_PATH = ("ops.py", "_spec.py", "_checks.py", "_mesh.py", "linen.py", "nn", "tables", "sparse", "train")
_MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem", "clear"}
_MUTATORS |= {"remove", "discard", "__setitem__"}


def mutated_module_containers(source: str) -> set[str]:
    """Names of module-level lists, dicts and sets that a function of ``source`` changes."""
    tree = ast.parse(source)
    containers = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        value = getattr(node, "value", None)
        literal = isinstance(value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp)
        call = isinstance(value, ast.Call) and getattr(value.func, "id", None) in {"list", "dict", "set"}
        if literal or call:
            containers |= {t.id for t in targets if isinstance(t, ast.Name)}
    changed = set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Global):
                changed |= set(node.names) & containers
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if isinstance(owner, ast.Name) and owner.id in containers and node.func.attr in _MUTATORS:
                    changed.add(owner.id)
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
                targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Subscript) and getattr(target.value, "id", None) in containers:
                        changed.add(target.value.id)
    return changed


def forward_path_files():
    for entry in FORWARD_PATH:
        path = ROOT / entry
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


@pytest.mark.parametrize("path", list(forward_path_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_level_registry_is_changed_by_the_forward_path(path):
    # The row-sparse step once found its layers through a module-level list keyed by id(layer);
    # the forward path now keeps no state outside the modules it is called on.
    assert mutated_module_containers(path.read_text(encoding="utf-8")) == set()


def test_the_registry_check_would_catch_the_old_recorder():
    old = (
        "_RECORDERS = []\n"
        "_BY_ID = {}\n"
        "def record(layer):\n    _RECORDERS.append(layer)\n"
        "def index(layer):\n    _BY_ID[id(layer)] = layer\n"
        "_CONSTANT = {'take': 1}\n"
        "def read():\n    return _CONSTANT['take']\n"
    )
    assert mutated_module_containers(old) == {"_RECORDERS", "_BY_ID"}
