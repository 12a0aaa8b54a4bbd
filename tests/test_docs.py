"""The documentation site's generated parts (``docs/_ext/arrayloss_docs.py``).

The API reference is generated from each public module's ``__all__`` and the
per-loss gallery pages from `arrayloss.LOSSES`, so names and losses added later
appear without editing the docs. These tests check the generator without running
Sphinx: every public module has a page (or a stated reason not to), every name of
every ``__all__`` is on its module's page, the build-time coverage check reports a
missing name, and every registered loss gets a runnable page linking to its API.
If a site has been built (``docs/_build/html``), its object inventory is checked
too; building it is the job of ``python -m sphinx -W -b html docs docs/_build/html``.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import arrayloss as al

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "docs" / "_ext" / "arrayloss_docs.py"
_spec = importlib.util.spec_from_file_location("arrayloss_docs", EXT)
assert _spec is not None
assert _spec.loader is not None
docs = importlib.util.module_from_spec(_spec)
sys.modules["arrayloss_docs"] = docs
_spec.loader.exec_module(docs)

# Discovered here independently of the generator, without importing anything.
PUBLIC = sorted(
    ["arrayloss"]
    + [
        m.name
        for m in pkgutil.iter_modules(al.__path__, prefix="arrayloss.")
        if not m.name.rsplit(".", 1)[1].startswith("_")
    ]
)


def _import(module: str):
    """Import ``module``; skip if it needs an optional package that is absent."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("arrayloss"):
            pytest.skip(f"{module} needs {exc.name}, which is not installed")
        raise


def test_every_public_module_has_a_page_or_a_reason():
    found = docs.public_modules()
    assert set(PUBLIC) <= set(found)
    # Beyond the package's files: only namespaces a module exports in its __all__
    # (``arrayloss.torch.keras``), importable by their full name.
    for extra in set(found) - set(PUBLIC):
        parent, attr = extra.rsplit(".", 1)
        assert parent in PUBLIC
        assert attr in importlib.import_module(parent).__all__
        assert importlib.import_module(extra).__name__ == extra
    absent = {m for m in found if not docs._importable(m)}  # a backend not installed
    assert (
        set(docs.reference_modules()) == set(found) - set(docs.NOT_REFERENCE) - absent
    )
    for module in ("arrayloss", "arrayloss.keras", "arrayloss.metrics"):
        assert module in docs.reference_modules()
    # The exclusions name real modules, so the list cannot rot silently.
    assert set(docs.NOT_REFERENCE) <= set(PUBLIC)


def test_losses_module_is_documented_through_arrayloss():
    # arrayloss.losses has no page of its own because arrayloss re-exports it.
    losses = _import("arrayloss.losses")
    assert set(losses.__all__) <= set(al.__all__)


@pytest.mark.parametrize("module", [m for m in PUBLIC if m not in docs.NOT_REFERENCE])
def test_every_name_of_all_is_on_its_page(module):
    mod = _import(module)
    page = docs.api_page(module)
    assert mod.__all__, module
    for name in mod.__all__:
        listed = (
            re.search(rf"^   {re.escape(name)}$", page, re.MULTILINE)  # autosummary
            or f".. autodata:: {name}\n" in page
            or f":mod:`{module}.{name}`" in page  # a submodule: its own page
            or re.search(rf"^\.\. py:\w+:: {re.escape(name)}$", page, re.MULTILINE)
        )
        assert listed, f"{module}.{name} is in __all__ but not on its API page"


def test_coverage_check_reports_a_missing_name():
    everything = {
        f"{m}.{n}" for m in docs.reference_modules() for n in docs.reference_entries(m)
    }
    assert docs.missing_from_inventory(everything) == []
    assert docs.missing_from_inventory(everything - {"arrayloss.cross_entropy"}) == [
        "arrayloss.cross_entropy"
    ]


def test_a_name_added_to_all_appears_on_the_page(monkeypatch):
    def extra() -> None:
        """A function added later."""

    monkeypatch.setattr(al.metrics, "extra", extra, raising=False)
    monkeypatch.setattr(al.metrics, "__all__", [*al.metrics.__all__, "extra"])
    assert re.search(r"^   extra$", docs.api_page("arrayloss.metrics"), re.MULTILINE)


def test_a_module_without_all_is_an_error(monkeypatch):
    monkeypatch.delattr(al.esp, "__all__")
    with pytest.raises(ValueError, match="has no __all__"):
        docs.reference_entries("arrayloss.esp")


def test_objects_exported_twice_are_documented_once():
    # DataError is exported by arrayloss.datasets and arrayloss.io.
    assert al.datasets.DataError is al.io.DataError
    first, second = sorted(["arrayloss.datasets", "arrayloss.io"])
    assert re.search(r"^   DataError$", docs.api_page(first), re.MULTILINE)
    page = docs.api_page(second)
    assert not re.search(r"^   DataError$", page, re.MULTILINE)
    assert f":exc:`{first}.DataError`" in page


@pytest.mark.parametrize("name", list(al.LOSSES))
def test_every_loss_has_a_runnable_page_linking_its_api(name):
    info = al.LOSSES[name]
    script = docs.loss_script(name)
    compile(script, f"plot_{docs.loss_slug(name)}.py", "exec")
    for fn in (info.value, info.value_and_grad):
        path = docs.public_path(fn)
        assert f":func:`{path}`" in script
        module, attr = path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), attr) is fn
    assert ("rank of the true class" in script) == ("k" in info.params)


def test_loss_page_names_are_unique():
    slugs = [docs.loss_slug(n) for n in al.LOSSES]
    assert len(set(slugs)) == len(slugs)


def test_cli_page_has_every_command():
    from arrayloss.cli import main

    page = docs.cli_page()
    commands = main.list_commands(None)
    assert commands
    for command in commands:
        assert f"``arrayloss {command}``" in page


def test_built_site_lists_every_name():
    inventory = ROOT / "docs" / "_build" / "html" / "objects.inv"
    if not inventory.exists():
        pytest.skip(
            "the site is not built (python -m sphinx -b html docs docs/_build/html)"
        )
    inv = pytest.importorskip("sphinx.util.inventory")
    with inventory.open("rb") as f:
        data = inv.InventoryFile.load(f, "", lambda *parts: "/".join(parts[1:]))
    documented = {
        name for kind, objs in data.items() if kind.startswith("py:") for name in objs
    }
    assert docs.missing_from_inventory(documented) == []


GUIDE = ROOT / "docs" / "guide"


def _options() -> dict[str, set[str]]:
    """Each command's long options (``--help`` aside), from the click commands."""
    import click

    from arrayloss.cli import main

    ctx = click.Context(main)
    found = {}
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        found[name] = {
            opt
            for param in command.params
            for opt in (*param.opts, *param.secondary_opts)
            if opt.startswith("--") and opt != "--help"
        }
    return found


def _mentioned(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))


def test_every_cli_option_is_described_in_the_hand_written_guide():
    # The generated CLI page lists every option anyway; the guide pages must say
    # what each does, so an option added later without a word there fails here.
    guide = "\n".join(p.read_text(encoding="utf-8") for p in GUIDE.glob("*.md"))
    options = _options()
    assert set(options) == {"eval", "train", "study", "check", "list"}
    missing = {
        command: sorted(opts - _mentioned(guide))
        for command, opts in options.items()
        if opts - _mentioned(guide)
    }
    assert missing == {}


def test_every_option_the_guide_names_exists():
    known = set().union(*_options().values()) | {"--help"}
    bench = {"--extra-args", "--gb", "--repeat"}  # bench/bench_eval*.py's options
    for page in GUIDE.glob("*.md"):
        unknown = _mentioned(page.read_text(encoding="utf-8")) - known - bench
        assert unknown == set(), page.name


def test_the_gradcheck_page_examples_run():
    import doctest

    page = GUIDE / "gradcheck.md"
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.attempted >= 9
    assert result.failed == 0


def test_the_gradcheck_page_check_table_is_what_check_prints():
    # The error columns depend on the machine's last digits; the rows counted, the
    # kinks and the verdicts do not.
    from click.testing import CliRunner

    from arrayloss.cli import main

    text = (GUIDE / "gradcheck.md").read_text(encoding="utf-8")
    block = re.search(r"```text\n\$ arrayloss (check [^\n]*)\n(.*?)```", text, re.S)
    assert block is not None
    result = CliRunner().invoke(main, block.group(1).split())
    assert result.exit_code == 0, result.output

    def columns(table: str) -> list[list[str]]:
        rows = [line.split() for line in table.strip().splitlines()[2:]]
        return [[r[0], r[1], r[2], r[-1]] for r in rows if r]

    shown = columns(block.group(2))
    assert len(shown) == 2
    printed = result.output.strip().split("\n\n")[0]
    assert columns(printed) == shown


def _python_blocks(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_readme_use_examples_print_what_they_say():
    import numpy as np

    blocks = _python_blocks(ROOT / "README.md")
    use = next(b for b in blocks if "al.cross_entropy(logits, labels)" in b)
    ignore = next(b for b in blocks if "ignore_index=-100" in b)
    namespace: dict[str, object] = {}
    results = []
    for statement in use.strip().split("\n"):
        code, _, comment = statement.partition("#")
        if not code.strip():
            continue
        if code.startswith(("import", "logits", "labels", "value,")):
            exec(code, namespace)
        else:
            results.append((eval(code, namespace), comment.strip()))
    (ce, ce_comment), (pair, _), (ok, _) = results
    assert ce_comment.endswith("...")
    assert f"{float(ce):.7f}".startswith(ce_comment.rstrip("."))
    assert isinstance(pair, tuple)
    assert len(pair) == 2
    assert ok is True
    value, grad = eval(ignore.split("#")[0].strip(), namespace)
    assert "(0.0, zeros)" in ignore
    assert float(value) == 0.0
    assert not np.any(grad)


def test_the_index_page_example_runs():
    (block,) = _python_blocks(ROOT / "docs" / "index.md")
    namespace: dict[str, object] = {}
    exec(block, namespace)
    assert float(namespace["value"]) > 0  # type: ignore[arg-type]


def test_the_training_page_quotes_the_commands_defaults():
    import click

    from arrayloss.cli import main

    text = (GUIDE / "training.md").read_text(encoding="utf-8")
    sections = re.split(r"^## `arrayloss (\w+)`$", text, flags=re.M)[1:]
    ctx = click.Context(main)
    compared = 0
    for name, body in zip(sections[::2], sections[1::2], strict=True):
        command = main.get_command(ctx, name)
        assert command is not None
        params = {o: p for p in command.params for o in p.opts}
        rows = re.findall(r"^\| [^|]*?`(--[\w-]+)`[^|]*\| ([^|]*) \|", body, re.M)
        for option, default in rows:
            value = params[option].default
            cell = default.strip().strip("`")
            if not re.fullmatch(r"[\w.,-]+", cell) or value is None:
                continue  # a phrase ("the preset"), or a default computed at run time
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert float(cell) == value, (name, option)
            else:
                assert cell == str(value), (name, option)
            compared += 1
    assert compared >= 20


def test_readme_names_every_jax_host_kernel():
    alj = pytest.importorskip("arrayloss.jax")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"On CPU the top-k and sparse kernels \(([^)]*)\)", text)
    assert found is not None
    named = set(re.findall(r"`([\w.]+)`", found.group(1)))
    assert named == {n for n in al.LOSSES if alj._compiled_kernel(n)}
