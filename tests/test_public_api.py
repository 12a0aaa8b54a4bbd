"""The public surface: ``__all__`` lists exactly the public names, and the package
code never creates arrays without ``device=`` (SciPy's non-default-device lint)."""

from __future__ import annotations

import ast
import inspect
import pathlib
import subprocess
import sys

import pytest

import arrayloss as al

PACKAGE = pathlib.Path(al.__file__).parent


def test_all_is_complete():
    assert len(set(al.__all__)) == len(al.__all__)  # order: ruff RUF022
    for name in al.__all__:
        assert hasattr(al, name), name
    public = {
        n for n, obj in vars(al).items()
        if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
    }  # fmt: skip
    assert public <= set(al.__all__)


def test_import_is_light():
    code = "import sys, arrayloss; print(sorted(m for m in ('scipy', 'torch', 'jax', 'cupy', 'dask', 'matplotlib') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


CREATION = {"arange", "asarray", "empty", "eye", "full", "linspace", "ones", "zeros"}


def _creation_calls_without_device(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id == "xp"):
            continue
        if node.func.attr not in CREATION:
            continue
        if (
            node.func.attr == "asarray"
            and node.args
            and not isinstance(node.args[0], ast.Constant)
        ):
            continue  # converting an existing array keeps its device
        if not any(k.arg == "device" for k in node.keywords):
            bad.append(f"{path.name}:{node.lineno} xp.{node.func.attr}")
    return bad


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_array_creation_names_a_device(path):
    assert _creation_calls_without_device(path) == []


@pytest.mark.parametrize("name", ["datasets", "io", "mlp"])
def test_heavier_submodules_load_on_first_use(name):
    """``arrayloss.<name>`` after a plain ``import arrayloss``, in a fresh process."""
    code = (
        "import sys, arrayloss; "
        f"assert 'arrayloss.{name}' not in sys.modules; "
        f"print(arrayloss.{name}.__name__, '{name}' in dir(arrayloss))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [f"arrayloss.{name}", "True"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        al.nope  # noqa: B018
