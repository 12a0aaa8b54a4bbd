"""Pages of the arrayloss site that are generated from the package itself.

Everything here is derived at build time, so names and losses added later appear
without editing the docs:

* the API reference: one page per public module, listing its ``__all__``
  (`reference_entries`, written by `write_api_pages`);
* one gallery script per registered loss, from `arrayloss.LOSSES`
  (`write_loss_scripts`), which sphinx-gallery runs like any other example;
* the index of the design notes in ``docs/design/`` (`write_design_index`);
* the command-line page, every command's ``--help`` (`cli_page`).

After the build, `check_reference` compares the objects Sphinx documented with
every ``__all__`` and warns (an error under ``-W``) about any name left out.
The pure functions import no Sphinx, so ``tests/test_docs.py`` calls them directly.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import types
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent
GENERATED = DOCS / "generated"

# Public-looking modules that are not API pages, and why.
NOT_REFERENCE = {
    "arrayloss.cli": "the command line; its page is every command's --help (cli_page)",
    "arrayloss.losses": "its __all__ is re-exported by arrayloss and documented there",
}


def public_modules() -> list[str]:
    """``arrayloss`` and every public submodule (no leading underscore), sorted.

    Found by walking the package, so an adapter module added later
    (``arrayloss.torch``) is listed without an edit here.
    """
    import arrayloss

    names = ["arrayloss"]
    for info in pkgutil.iter_modules(arrayloss.__path__, prefix="arrayloss."):
        if not info.name.rsplit(".", 1)[1].startswith("_"):
            names.append(info.name)
    # Namespaces that a module builds at import time and exports in its __all__
    # (``arrayloss.torch.keras``): importable by name, so they get a page too.
    for name in list(names):
        try:
            mod = importlib.import_module(name)
        except ImportError:  # an optional backend that is not installed
            continue
        for attr in getattr(mod, "__all__", ()):
            obj = getattr(mod, attr, None)
            full = f"{name}.{attr}"
            if (
                isinstance(obj, types.ModuleType)
                and obj.__name__ == full
                and full in sys.modules
                and full not in names
            ):
                names.append(full)
    return sorted(names)


def reference_modules() -> list[str]:
    """The modules that get an API page: `public_modules` less `NOT_REFERENCE`, and
    less an adapter whose backend is not installed (the ``docs`` extra installs
    every one, so the site itself always has them)."""
    return [m for m in public_modules() if m not in NOT_REFERENCE and _importable(m)]


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("arrayloss"):
            raise
        return False
    return True


def _kind(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "data"


def reference_entries(module: str) -> dict[str, str]:
    """``{name: kind}`` for every name of ``module.__all__``, in its order.

    ``kind`` is ``"module"``, ``"class"``, ``"function"`` or ``"data"``.  A module
    without ``__all__`` is an error: the reference is generated from it.
    """
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    if names is None:
        msg = f"{module} has no __all__; the API reference is generated from it"
        raise ValueError(msg)
    return {name: _kind(getattr(mod, name)) for name in names}


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _earlier_homes() -> dict[int, str]:
    """``{id(obj): "module.name"}`` of each object at its first reference module."""
    homes: dict[int, str] = {}
    for module in reference_modules():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # an adapter whose backend is absent
            if exc.name and exc.name.startswith("arrayloss"):
                raise
            continue
        for name, kind in reference_entries(module).items():
            if kind in ("class", "function"):
                homes.setdefault(id(getattr(mod, name)), f"{module}.{name}")
    return homes


def api_page(module: str) -> str:
    """The reStructuredText of ``module``'s API page.

    An object exported by an earlier module too (``DataError`` of both
    `arrayloss.datasets` and `arrayloss.io`) is documented once, at its first
    home, and listed here as the same object.
    """
    mod = importlib.import_module(module)
    homes = _earlier_homes()
    entries, aliases = {}, {}
    for name, kind in reference_entries(module).items():
        home = homes.get(id(getattr(mod, name)), f"{module}.{name}")
        if kind in ("class", "function") and home != f"{module}.{name}":
            aliases[name] = (kind, home)
        else:
            entries[name] = kind
    lines = [
        f".. _api-{module}:\n",
        _title(module),
        f".. automodule:: {module}\n   :no-members:\n",
        f".. currentmodule:: {module}\n",
    ]
    groups = {
        "function": "Functions",
        "class": "Classes",
        "data": "Constants",
        "module": "Submodules",
    }
    for kind, heading in groups.items():
        names = [n for n, k in entries.items() if k == kind]
        if not names:
            continue
        lines.append(_title(heading, "-"))
        if kind == "module":
            # Each submodule has its own page; link to it instead of a stub.
            lines += [f"- :mod:`{module}.{n}`" for n in names]
            lines.append("")
        elif kind == "data":
            for n in names:
                lines.append(f".. autodata:: {n}\n   :no-value:\n")
        else:
            lines.append(".. autosummary::\n   :toctree: stubs\n   :nosignatures:\n")
            lines += [f"   {n}" for n in names]
            lines.append("")
    if aliases:
        lines.append(_title("Also exported here", "-"))
        for name, (kind, home) in aliases.items():
            obj = getattr(mod, name)
            if kind == "function":
                directive, role = "function", "func"
            elif issubclass(obj, BaseException):
                directive, role = "exception", "exc"
            else:
                directive, role = "class", "class"
            lines.append(f".. py:{directive}:: {name}\n")
            lines.append(f"   The same object as :{role}:`{home}`.\n")
    return "\n".join(lines)


def write_api_pages() -> list[str]:
    """Write ``generated/api/<module>.rst`` and its index; return the modules."""
    out = GENERATED / "api"
    out.mkdir(parents=True, exist_ok=True)
    modules = reference_modules()
    stubs: set[str] = set()
    for module in modules:
        page = api_page(module)
        _write(out / f"{module}.rst", page)
        stubs |= {f"{module}.{n}.rst" for n in _stub_names(page)}
    # autosummary never removes a stub; a stale one would be an orphan page.
    for stale in (out / "stubs").glob("*.rst"):
        if stale.name not in stubs:
            stale.unlink()
    index = [
        ".. _api:\n",
        _title("API reference"),
        "Generated from each module's ``__all__``. Every loss is a pair",
        "``name(logits, labels, /, *, <params>, axis=-1, reduction='mean',",
        "weights=None, ignore_index=None, class_weights=None)`` and",
        "``name_and_grad(...)``; see :doc:`/guide/choosing` and, for the last two,",
        ":doc:`/guide/conventions`.",
        "Every loss and metric checks its input and raises a ``ValueError`` or",
        "``TypeError`` whose message names the argument and the value (labels out",
        "of range, NaN scores, soft labels that do not sum to 1, a parameter out",
        "of its range); values are checked where they exist",
        "(:doc:`/guide/backends`). The file readers of :mod:`arrayloss.io` and",
        ":mod:`arrayloss.datasets` raise ``DataError``, naming the file and, where",
        "they can, the row. A *Raises* section lists what a function raises beyond",
        "that.\n",
        ".. toctree::\n   :maxdepth: 1\n",
    ]
    index += [f"   {m}" for m in modules]
    _write(out / "index.rst", "\n".join(index) + "\n")
    return modules


def _stub_names(page: str) -> list[str]:
    """The names listed by the autosummary tables of an API page."""
    names, inside = [], False
    for line in page.splitlines():
        if line.startswith(".. autosummary::"):
            inside = True
        elif inside and line.startswith("   ") and not line.strip().startswith(":"):
            names.append(line.strip())
        elif inside and line and not line.startswith("   "):
            inside = False
    return names


def public_path(obj: Any) -> str:
    """The documented dotted path of a public object (first reference module)."""
    for module in reference_modules():
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            if getattr(mod, name, None) is obj:
                return f"{module}.{name}"
    msg = f"{obj!r} is in no reference module's __all__"
    raise ValueError(msg)


def loss_slug(name: str) -> str:
    """The file stem of a loss's gallery page: ``keras.huber`` -> ``keras_huber``."""
    return name.replace(".", "_")


def _rst_escape(text: str) -> str:
    for char in "\\*`|_":
        text = text.replace(char, "\\" + char)
    return text


def _call(path: str) -> str:
    """``arrayloss.keras.huber`` as called in a script: ``al.keras.huber``."""
    return "al" + path.removeprefix("arrayloss")


def loss_script(name: str) -> str:
    """The sphinx-gallery script that draws one registered loss."""
    import arrayloss as al

    info = al.LOSSES[name]
    value, grad = public_path(info.value), public_path(info.value_and_grad)
    params = ", ".join(f"``{k}={v!r}``" for k, v in info.params.items()) or "none"
    targets = {"index": "class indices", "index|soft": "class indices or soft labels"}
    rank_text = rank_code = ""
    if "k" in info.params:
        rank_text = (
            "\nThe third panel places the true class at rank 1 to 10 among competitor\n"
            "scores 8, 7, ..., 0; the dashed line is ``k``.\n"
        )
        rank_code = f"""
# The true class at rank r = 1..C among competitor scores C-2, ..., 0.
competitors = np.arange(C - 2, -1, -1.0)
ranks = np.arange(1, C + 1)
edges = np.concatenate([[competitors[0] + 1], competitors, [competitors[-1] - 1]])
by_rank = np.tile(np.concatenate([[0.0], competitors]), (C, 1))
by_rank[:, 0] = (edges[:-1] + edges[1:]) / 2
rank_loss = {_call(value)}(by_rank, labels[:C], reduction="none")
ax_rank.plot(ranks, rank_loss, "o-", ms=3, color="C2")
ax_rank.axvline({info.params["k"]!r} + 0.5, color="0.6", ls="--", lw=0.8)
ax_rank.set(xlabel="rank of the true class", ylabel="loss", xticks=ranks)
"""
    panels = 3 if rank_code else 2
    axes = "ax_loss, ax_grad, ax_rank" if rank_code else "ax_loss, ax_grad"
    return rf'''r"""
{_title(f"``{name}``")}
{_rst_escape(info.summary)}.

- API: :func:`{value}`, :func:`{grad}`; by name:
  ``arrayloss.value_and_grad("{name}", logits, labels)``.
- Labels: {targets.get(info.targets, info.targets)}.
- Parameters (defaults): {params}.

The curves are the loss of one sample and the gradient with respect to the
true-class score :math:`s_y`, against the true-class margin
:math:`m = s_y - \max_{{j \ne y}} s_j` (10 classes, every other score 0). A flat
loss where :math:`m \ll 0` saturates; a jump in the gradient is a kink.
{rank_text}"""

import matplotlib.pyplot as plt
import numpy as np

import arrayloss as al

C = 10
margin = np.linspace(-6.0, 6.0, 481)
logits = np.zeros((margin.size, C))
logits[:, 0] = margin  # the true class is 0; all competitors score 0
labels = np.zeros(margin.size, dtype=np.int64)

loss = {_call(value)}(logits, labels, reduction="none")
_, grad = {_call(grad)}(logits, labels, reduction="none")

fig, ({axes}) = plt.subplots(1, {panels}, figsize=({4 * panels}, 3), layout="constrained")
ax_loss.plot(margin, loss)
ax_loss.set(xlabel="true-class margin $m$", ylabel="loss", title="{name}")
ax_grad.plot(margin, grad[:, 0], color="C1")
ax_grad.axhline(0, color="0.8", lw=0.8)
ax_grad.set(xlabel="true-class margin $m$", ylabel=r"$\partial \ell / \partial s_y$")
{rank_code}plt.show()
'''


def write_loss_scripts() -> list[str]:
    """Write one gallery script per loss of `arrayloss.LOSSES`; return the names.

    Scripts of losses no longer registered are removed, so the gallery is exactly
    the registry.
    """
    import arrayloss as al

    out = GENERATED / "losses"
    out.mkdir(parents=True, exist_ok=True)
    header = (
        _title("One page per loss")
        + "\nGenerated from :data:`arrayloss.LOSSES`: each page draws one loss and its "
        "gradient against the true-class margin and links to its API. The family "
        "figures are in :doc:`/auto_gallery/index`.\n"
    )
    _write(out / "GALLERY_HEADER.rst", header)
    wanted = {f"plot_{loss_slug(n)}.py": n for n in al.LOSSES}
    for stale in out.glob("plot_*.py"):
        if stale.name not in wanted:
            stale.unlink()
            # ... and its rendered page, which would be an orphan document.
            for page in (DOCS / "auto_losses").glob(f"{stale.stem}.*"):
                page.unlink()
    for fname, name in wanted.items():
        _write(out / fname, loss_script(name))
    return list(al.LOSSES)


def write_design_index() -> None:
    """Write ``generated/design.rst``: a toctree of ``docs/design/*.md``, if any."""
    notes = sorted((DOCS / "design").glob("*.md"))
    lines = [_title("Design notes")]
    if notes:
        lines.append(
            "The design notes the implementation was written from, kept in the "
            "repository under ``docs/design/``.\n"
        )
        lines.append(".. toctree::\n   :maxdepth: 1\n")
        lines += [f"   /design/{p.stem}" for p in notes]
    else:
        lines.append("This checkout has no design notes (``docs/design/`` is empty).")
    _write(GENERATED / "design.rst", "\n".join(lines) + "\n")


def cli_page() -> str:
    """The reStructuredText of the command-line page: every command's ``--help``."""
    import click

    from arrayloss.cli import main

    lines = [
        ".. _cli:\n",
        _title("Command line"),
        "Every command's ``--help``, generated from the installed commands. Errors",
        "are one line on standard error (below click's usage lines for a bad option",
        "or value), never a traceback; exit codes are 0",
        "success, 1 bad data or a failed check, 2 bad usage.\n",
    ]
    root = click.Context(main, info_name="arrayloss", **main.context_settings)
    sections = [("arrayloss", main, root)]
    for name in main.list_commands(root):
        command = main.get_command(root, name)
        if command is not None:
            ctx = click.Context(
                command, info_name=name, parent=root, **command.context_settings
            )
            sections.append((f"arrayloss {name}", command, ctx))
    for title, command, ctx in sections:
        text = command.get_help(ctx)
        lines += [_title(f"``{title}``", "-"), ".. code-block:: text\n"]
        lines += [f"   {line}".rstrip() for line in text.splitlines()]
        lines.append("")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    # Rewrite only on change, so Sphinx's incremental builds stay incremental.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def missing_from_inventory(documented: set[str]) -> list[str]:
    """Names ``module.name`` of any reference module's ``__all__`` not in ``documented``."""
    missing = []
    for module in reference_modules():
        for name in reference_entries(module):
            if f"{module}.{name}" not in documented:
                missing.append(f"{module}.{name}")
    return missing


# --- Sphinx wiring ---------------------------------------------------------------


def _generate(app: Any, config: Any) -> None:
    write_api_pages()
    write_loss_scripts()
    write_design_index()
    _write(GENERATED / "cli.rst", cli_page())


def _check_reference(app: Any, env: Any) -> None:
    from sphinx.util import logging

    domain = env.get_domain("py")
    documented = {name for name, *_ in domain.get_objects()}
    for name in missing_from_inventory(documented):
        logging.getLogger(__name__).warning(
            "%s is in __all__ but missing from the API reference", name
        )


def setup(app: Any) -> dict[str, Any]:
    # Before Sphinx lists the source files and sphinx-gallery reads the scripts.
    app.connect("config-inited", _generate, priority=100)
    app.connect("env-check-consistency", _check_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
