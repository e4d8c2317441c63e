"""Folders are layers and imports point down (docs/architecture.md): a module
imports only from its own folder or a folder ranked below it."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
# folder -> (package, rank). Same rank: neither imports the other.
LAYERS = {
    "core": ("flowers", 0),
    "components": ("flowers.components", 1),
    "data": ("flowers.data", 1),
    "runs": ("flowers.runs", 2),
    "pipeline": ("flowers.pipeline", 3),
    "kubeflow": ("flowers.kubeflow", 4),
    "cli": ("flowers.cli", 5),
}
_BY_PACKAGE = sorted(((package, folder) for folder, (package, _) in LAYERS.items()), key=lambda p: -len(p[0]))


def folder_of(module: str) -> str:
    """The folder a `flowers...` module lives in (longest package prefix)."""
    for package, folder in _BY_PACKAGE:
        if module == package or module.startswith(package + "."):
            return folder
    raise AssertionError(module)


def modules():
    for folder, (package, _) in LAYERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            yield (package if path.stem == "__init__" else f"{package}.{path.stem}"), path


def project_imports(path: pathlib.Path) -> set[str]:
    """Every flowers module imported anywhere in the file (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("flowers")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowers"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_imports_point_down():
    upward = [
        f"{name} ({folder_of(name)}/) imports {imported} ({folder_of(imported)}/)"
        for name, path in modules()
        for imported in project_imports(path)
        if folder_of(imported) != folder_of(name) and LAYERS[folder_of(imported)][1] >= LAYERS[folder_of(name)][1]
    ]
    assert upward == []


def test_the_foundation_imports_no_heavy_library():
    for name, path in modules():
        if folder_of(name) == "core" and name != "flowers.images":
            text = path.read_text()
            assert "import tensorflow" not in text and "from tfx" not in text, name


def test_keras_2_is_selected_in_one_place():
    code = [p for folder in LAYERS for p in (ROOT / folder).glob("*.py")]
    setters = [str(p.relative_to(ROOT)) for p in code if "TF_USE_LEGACY_KERAS" in p.read_text()]
    assert setters == ["core/__init__.py"]
