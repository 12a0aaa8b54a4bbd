"""``arrayloss check``: verify analytic gradients against SciPy finite differences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

__all__ = ["check", "input_families"]

FAMILIES = ("random", "large", "ties", "near_one_hot")


def input_families(n: int, c: int, seed: int) -> dict[str, tuple[Any, Any]]:
    """Random and adversarial ``(logits, labels)`` batches, float64 NumPy.

    ``random``: N(0, 3^2) scores; ``large``: N(0, 1000^2); ``ties``: all scores
    equal; ``near_one_hot``: one class (the label or not) 20 above N(0, 1) scores.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    top = rng.integers(0, c, size=n)
    near = rng.normal(size=(n, c))
    near[np.arange(n), top] += 20.0
    return {
        "random": (3.0 * rng.normal(size=(n, c)), labels),
        "large": (1000.0 * rng.normal(size=(n, c)), labels),
        "ties": (np.zeros((n, c)), labels),
        "near_one_hot": (near, labels),
    }


@click.command("check")
@click.option(
    "--loss",
    "loss_specs",
    multiple=True,
    metavar="NAME[:k=v,...]",
    help="Loss to check, with optional parameters; repeatable. Default: all.",
)
@click.option(
    "--classes",
    default=10,
    show_default=True,
    type=click.IntRange(2),
    help="Number of classes C.",
)
@click.option(
    "--samples",
    default=50,
    show_default=True,
    type=click.IntRange(1),
    help="Rows per input family.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option(
    "--rtol",
    default=1e-6,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Pass if max|error| <= rtol * max|gradient|.",
)
def check(
    loss_specs: tuple[str, ...], classes: int, samples: int, seed: int, rtol: float
) -> None:
    """Check every loss's analytic gradient against SciPy finite differences.

    Runs `arrayloss.gradcheck` (scipy.differentiate, float64) on random and
    adversarial inputs (huge scores, ties, near one-hot) and prints, per loss and
    input family, the largest relative error.  Rows that sit on a kink of a non-smooth loss are
    left out and counted.

    Exit codes: 0 all gradients agree; 1 a gradient disagrees; 2 bad usage.
    """
    import numpy as np

    from .. import LOSSES, gradcheck
    from ._options import parse_loss_spec

    specs = [parse_loss_spec(s) for s in loss_specs] or [(name, {}) for name in LOSSES]
    batches = input_families(samples, classes, seed)
    rows = []
    failed = False
    for name, params in specs:
        cells, checked, total, ok = [], 0, 0, True
        for logits, labels in batches.values():
            try:
                res = gradcheck(name, logits, labels, rtol=rtol, **params)
            except ValueError as exc:
                msg = f"{name}: {exc}"
                raise click.UsageError(msg) from None
            n_checked = int(np.sum(res.checked))
            cells.append(f"{res.max_rel_error:.1e}" if n_checked else "-")
            checked += n_checked
            total += len(labels)
            ok = ok and res.ok
        failed = failed or not ok
        label = name + (
            ":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else ""
        )
        rows.append((label, f"{checked}/{total}", *cells, "ok" if ok else "FAIL"))
    _print_table(("loss", "rows checked", *FAMILIES, "status"), rows)
    click.echo(
        "\nmax |analytic - numeric| / max |numeric| per input family; a row passes when "
        f"the error is <= {rtol:g} x max |numeric| + 1e-10 x max(1, |loss|) (the "
        "float64 finite-difference noise floor, which dominates where gradients are "
        "tiny, e.g. saturated softmax rows)."
    )
    if failed:
        msg = "some analytic gradients disagree with finite differences"
        raise click.ClickException(msg)


def _print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        )
