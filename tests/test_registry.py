"""The registry against the public API contract (docs/design/api.md)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import arrayloss as al

# The canonical names of the spec's table; tests and users' scripts call these.
SPEC_NAMES = [
    "cross_entropy", "l1", "l2", "expectation", "regularised_expectation",
    "chebyshev", "hinge", "squared_hinge", "cubed_hinge", "squared_log", "tanimoto",
    "cauchy_schwarz", "kl_divergence", "multiclass_hinge", "crammer_singer",
    "smooth_topk_svm", "topk_svm",
] + [
    f"keras.{n}"
    for n in (
        "categorical_crossentropy", "kl_divergence", "poisson", "categorical_hinge",
        "hinge", "squared_hinge", "mean_squared_error", "mean_absolute_error",
        "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
        "log_cosh", "huber", "cosine_similarity",
    )
]  # fmt: skip

SPEC_DEFAULTS = {
    "cross_entropy": {"label_smoothing": 0.0},
    "hinge": {"margin": 0.5},
    "squared_hinge": {"margin": 0.5},
    "cubed_hinge": {"margin": 0.5},
    "multiclass_hinge": {"margin": 1.0},
    "crammer_singer": {"margin": 1.0},
    "smooth_topk_svm": {"k": 5, "tau": 1.0, "alpha": 1.0},
    "topk_svm": {"k": 5, "alpha": 1.0},
}


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_spec_names_present(name):
    assert name in al.LOSSES


@pytest.mark.parametrize(("name", "defaults"), SPEC_DEFAULTS.items())
def test_spec_defaults(name, defaults):
    params = al.LOSSES[name].params
    for key, value in defaults.items():
        assert params[key] == value


@pytest.mark.parametrize("name", sorted(al.LOSSES))
def test_entry_is_consistent(name):
    info = al.LOSSES[name]
    assert info.name == name
    assert info.targets in ("index", "index|soft")
    assert info.summary
    sig_v = inspect.signature(info.value)
    sig_g = inspect.signature(info.value_and_grad)
    assert sig_v.parameters.keys() == sig_g.parameters.keys()
    for p in sig_v.parameters.values():
        if p.name in ("logits", "labels"):
            assert p.kind is p.POSITIONAL_ONLY
        else:
            assert p.kind is p.KEYWORD_ONLY
            assert p.default == sig_g.parameters[p.name].default
    assert list(sig_v.parameters)[-5:] == [
        "axis", "reduction", "weights", "ignore_index", "class_weights"
    ]  # fmt: skip
    assert info.value.__doc__
    assert ".. math::" in info.value.__doc__
    assert info.value_and_grad.__name__ == info.value.__name__ + "_and_grad"


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        al.LOSSES["x"] = al.LOSSES["cross_entropy"]  # type: ignore[index]


def test_value_and_grad_by_name(rng):
    z = rng.normal(size=(3, 8))
    y = np.array([0, 1, 2])
    for name, info in al.LOSSES.items():
        v, g = al.value_and_grad(name, z, y)
        v2, g2 = info.value_and_grad(z, y)
        np.testing.assert_array_equal(v, v2)
        np.testing.assert_array_equal(g, g2)


def test_unknown_name_suggests():
    with pytest.raises(
        ValueError, match=r"unknown loss 'cross_entropie'.*did you mean 'cross_entropy'"
    ):
        al.value_and_grad("cross_entropie", np.zeros((1, 2)), np.array([0]))


def test_top_level_exports_every_loss():
    for name, info in al.LOSSES.items():
        if name.startswith("keras."):
            assert getattr(al.keras, name.removeprefix("keras.")) is info.value
        else:
            assert getattr(al, name) is info.value
            assert getattr(al, name + "_and_grad") is info.value_and_grad


# --------------------------------------------------------------------------- #
# The project stands on its own: every document it cites is in the repository.
# --------------------------------------------------------------------------- #

_ROOT = Path(__file__).resolve().parent.parent
_CITED = re.compile(
    r"(?<![\w/.])((?:docs/|spec/|shared/)?[\w/.-]*?\b(?:topk|losses|refvalues|api)\.(?:md|txt))\b"
)


def _citations() -> list[tuple[str, str]]:
    found = []
    for top in ("arrayloss", "tests", "bench"):
        for path in sorted((_ROOT / top).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue  # this file names the old citations in its docstring
            for m in _CITED.finditer(path.read_text(encoding="utf-8")):
                found.append((str(path.relative_to(_ROOT)), m.group(1)))
    return found


def test_cited_design_notes_are_in_the_repository():
    """Defect 10 (issue 12): code, tests and bench cited ``topk.md``, ``spec/...``,
    ``refvalues.txt`` and ``losses.md``, none of them in the repository.  Every
    citation must now be a ``docs/design/`` path that exists."""
    cited = _citations()
    assert len(cited) >= 10  # the scan found the citations (it compared something)
    wrong = [(f, c) for f, c in cited if not c.startswith("docs/design/")]
    assert not wrong, f"citations outside docs/design/: {wrong}"
    missing = sorted({c for _, c in cited if not (_ROOT / c).is_file()})
    assert not missing, f"cited but not in the repository: {missing}"


# --------------------------------------------------------------------------- #
# mypy --strict holds whichever optional backends are installed
# --------------------------------------------------------------------------- #

_CORE = {"numpy", "scipy", "array_api_compat", "array_api_extra", "click"}


def _imported_roots() -> set[str]:
    import ast
    import sys

    roots: set[str] = set()
    for path in (_ROOT / "arrayloss").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots - set(sys.stdlib_module_names) - {"arrayloss", "__future__"}


def test_mypy_ignores_every_optional_import():
    """Defect 8 (issue 12): ``mypy --strict`` failed without jax and distributed
    installed: ``distributed`` was missing from the ``ignore_missing_imports``
    override list.  Every optional package arrayloss imports must be on it."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ignored = {
        pattern.removesuffix(".*")
        for override in config["tool"]["mypy"]["overrides"]
        if override.get("ignore_missing_imports")
        for pattern in override["module"]
    }
    optional = _imported_roots() - _CORE
    assert {"jax", "dask", "torch", "distributed"} <= optional  # the scan found them
    assert sorted(optional - ignored) == []


def test_untyped_call_ignores_survive_an_absent_backend():
    """Defect 8: ``# type: ignore[no-untyped-call]`` on a Dask or JAX call is an
    *unused* ignore (an error under --strict) when that backend is absent, where
    the call is typed Any.  Each such ignore also names ``unused-ignore``."""
    lines = [
        (path.name, i, line)
        for path in (_ROOT / "arrayloss").rglob("*.py")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "type: ignore[no-untyped-call" in line
    ]
    assert lines  # there are such calls (dask.array.map_blocks, jax.config)
    bad = [(f, i) for f, i, line in lines if "unused-ignore" not in line]
    assert bad == []
