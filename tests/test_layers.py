"""Imports point down the layers (README, "Layout"): foundation, then
components and data, then the pipeline, then Kubeflow, then the CLIs."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = {"core": "flowers", "components": "flowers.components", "data": "flowers.data", "pipeline": "flowers.pipeline", "kubeflow": "flowers.kubeflow"}
CLIS = {"flowers.pipeline.cli", "flowers.pipeline.options", "flowers.kubeflow.cli"}
ENTRY_FILES = {"flowers.kubeflow.tfx_local_runner", "flowers.kubeflow.tfx_kubeflow_v2_runner"}


def rank(module: str) -> int:
    if module in ENTRY_FILES:
        return 5
    if module in CLIS:
        return 4
    for prefix, level in (("flowers.kubeflow", 3), ("flowers.pipeline", 2), ("flowers.components", 1), ("flowers.data", 1)):
        if module == prefix or module.startswith(prefix + "."):
            return level
    return 0  # the foundation: flowers.config, flowers.features, ...


def modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            yield name, path


def project_imports(path: pathlib.Path) -> set[str]:
    """Every flowers module imported anywhere in the file (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("flowers")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowers"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                # `from flowers import features` imports the module flowers.features.
                found.add(child if _is_module(child) else node.module)
    return found


def _is_module(name: str) -> bool:
    return any(name == module for module, _ in modules())


def test_imports_point_down():
    upward = [
        f"{name} (layer {rank(name)}) imports {imported} (layer {rank(imported)})"
        for name, path in modules()
        for imported in project_imports(path)
        if rank(imported) > rank(name)
    ]
    assert upward == []


def test_the_foundation_imports_no_other_layer_and_no_heavy_library():
    for name, path in modules():
        if rank(name) == 0 and name != "flowers.images":
            text = path.read_text()
            assert all(rank(i) == 0 for i in project_imports(path)), name
            assert "import tensorflow" not in text and "from tfx" not in text, name


def test_keras_2_is_selected_in_one_place():
    code = [p for folder in FOLDERS for p in (ROOT / folder).glob("*.py")]
    setters = [str(p.relative_to(ROOT)) for p in code if "TF_USE_LEGACY_KERAS" in p.read_text()]
    assert setters == ["core/__init__.py"]
