"""``arrayloss check``: verify analytic gradients against SciPy finite differences."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from .._errors import one_line, user_loss_of
from ._options import (
    Real,
    check_loss_params,
    count_option,
    format_option,
    format_spec,
    json_params,
    loss_option,
)

__all__ = ["MAX_SCORES", "check", "input_families"]


FAMILIES = ("random", "large", "ties", "near_one_hot")
# Tie levels with pairwise gaps (1.58, 1.72, 3.30) that no default margin, alpha
# or threshold of the registry matches, so tied rows sit on the ties' kinks only.
_TIE_LEVELS = (-1.37, 0.21, 1.93)

MAX_SCORES = 1_000_000
"""The most scores of one input family, ``--classes`` x ``--samples``: the finite
differences hold about 0.75 KB a score (750 MB at this limit, 7.5 GB at the
options' own limits, 1000 x 10000) and take time growing as samples x classes^2
(a minute for cross-entropy at 100 x 10000), per loss; more is bad usage before
any work, not a run killed for its memory without a word."""


def input_families(n: int, c: int, seed: int) -> dict[str, tuple[Any, Any]]:
    """Random and adversarial ``(logits, labels)`` batches, float64 NumPy.

    ``random``: N(0, 3^2) scores; ``large``: N(0, 1000^2); ``ties``: every row has
    tied scores: the first fifth of the rows (at least one) all equal, the next
    two fifths drawn from three levels, the rest N(0, 3^2) with one score copied
    onto another (rows whose ties sit on a kink of a non-smooth loss are left out
    by the check, the others compared); ``near_one_hot``: one class (the label or
    not) 20 above N(0, 1) scores.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    top = rng.integers(0, c, size=n)
    near = rng.normal(size=(n, c))
    near[np.arange(n), top] += 20.0
    ties = 3.0 * rng.normal(size=(n, c))
    src, dst = rng.integers(0, c, size=n), rng.integers(0, c - 1, size=n)
    dst = np.where(dst >= src, dst + 1, dst) % c  # another class (itself if c = 1)
    ties[np.arange(n), dst] = ties[np.arange(n), src]
    leveled = slice(max(1, n // 5), max(1, n // 5) + 2 * n // 5)
    ties[leveled] = rng.choice(np.asarray(_TIE_LEVELS), size=ties[leveled].shape)
    ties[: max(1, n // 5)] = 0.0
    return {
        "random": (3.0 * rng.normal(size=(n, c)), labels),
        "large": (1000.0 * rng.normal(size=(n, c)), labels),
        "ties": (ties, labels),
        "near_one_hot": (near, labels),
    }


@dataclass
class _Family:
    status: str  # passed | failed | infinite | unresolved | skipped | error
    rows: int
    checked: int = 0
    at_kink: int = 0
    failed: int = 0
    infinite: int = 0
    unresolved: int = 0
    max_abs_error: float = math.nan
    max_rel_error: float = math.nan
    below_noise_floor: bool = False
    message: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rows": self.rows,
            "checked": self.checked,
            "at_kink": self.at_kink,
            "failed": self.failed,
            "infinite": self.infinite,
            "unresolved": self.unresolved,
            "max_abs_error": _finite_or_none(self.max_abs_error),
            "max_rel_error": _finite_or_none(self.max_rel_error),
            "below_noise_floor": self.below_noise_floor,
            "message": self.message,
        }


@dataclass
class _Loss:
    name: str
    params: dict[str, Any]
    explicit: bool
    note: str | None = None
    skip_reason: str | None = None
    families: dict[str, _Family] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return format_spec(self.name, self.params)

    @property
    def status(self) -> str:
        states = {f.status for f in self.families.values()}
        if states & {"failed", "error"}:
            return "failed"
        if "infinite" in states:
            return "infinite"
        if "unresolved" in states:
            return "unresolved"
        return "passed" if "passed" in states else "skipped"

    def any_family(self, status: str) -> bool:
        """Whether an input family of this loss has ``status``."""
        return any(f.status == status for f in self.families.values())

    def total(self, key: str) -> int:
        return sum(int(getattr(f, key)) for f in self.families.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "loss": self.spec,
            "name": self.name,
            "params": json_params(self.params),
            "status": self.status,
            "note": self.note or self.skip_reason,
            "rows": self.total("rows"),
            "checked": self.total("checked"),
            "at_kink": self.total("at_kink"),
            "failed": self.total("failed"),
            "infinite": self.total("infinite"),
            "unresolved": self.total("unresolved"),
            "families": {k: f.as_json() for k, f in self.families.items()},
        }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


_HELP = """Check every loss's analytic gradient against SciPy finite differences.

Runs `arrayloss.gradcheck` (scipy.differentiate, float64) on random and
adversarial inputs (huge scores, ties, near one-hot) and prints, per loss and
input family, the largest relative error.  Rows that sit on a kink of a
non-smooth loss are not compared and are counted as "at kink"; a family whose
rows all sit on kinks shows "at kink" instead of an error, and is neither a
pass nor a failure.  Rows where the loss's value is infinite (an overflowing
loss) are not compared either: finite differences cannot check a gradient
there; such a family shows "infinite", and is not a pass.  Nor are rows whose
loss is finite but so large that its rounding exceeds 1 and the row's gradient
(hinge:margin=1e200): finite differences cannot resolve a gradient there, and
such a family shows "unresolved", not a pass.

Without --loss every loss of the registry is checked.  A top-k loss whose
default k does not fit --classes is checked with k = classes - 1 and a note
says so; a loss that cannot run on --classes classes at all is skipped with its
reason.  A loss named with --loss is checked as given (bad parameters: exit 2).
Each input family holds --classes x --samples scores, at most 1,000,000: the
finite differences take about 0.75 KB a score and, per loss, time growing as
samples x classes^2 (more: exit 2, before any work).

\b
--format json prints one object with the keys
  command ("check"), classes, samples, seed, rtol, atol (null: the default
  noise floor), status ("passed", "failed", "infinite", "unresolved" or
  "skipped"), and losses: a list of objects with loss (the spec,
  NAME[:k=v,...]), name, params, status ("passed", "failed", "infinite",
  "unresolved", "skipped"), note (why parameters were adapted or the loss
  skipped, else null), rows, checked, at_kink, failed, infinite (rows whose
  loss value is infinite), unresolved (rows whose loss is too large for finite
  differences), and families: an object keyed by random, large, ties,
  near_one_hot, each with status ("passed", "failed", "infinite",
  "unresolved", "skipped", "error"), rows, checked, at_kink, failed, infinite,
  unresolved, max_abs_error, max_rel_error (null when nothing was compared),
  below_noise_floor (true when the gradient is below the absolute tolerance,
  so only absolute agreement was checked) and message (the error's text for
  status "error", else null).

Exit codes: 0 every checked gradient agrees; 1 a gradient disagrees, a loss
raised an error, a loss's value is infinite or too large to resolve at some
rows, or a loss named with --loss had no row compared; 2 bad usage.
"""


@click.command("check", help=_HELP)
@loss_option("loss_specs", help="Default: all.")
@count_option(
    "--classes",
    default=10,
    low=2,
    high=1000,
    help=f"Number of classes C (C x samples at most {MAX_SCORES:,}).",
)
@count_option(
    "--samples",
    default=50,
    low=1,
    high=10000,
    help=f"Rows per input family (classes x samples at most {MAX_SCORES:,}).",
)
@count_option("--seed", default=0, low=0, help="Random seed.")
@click.option(
    "--rtol",
    default=1e-6,
    show_default=True,
    type=Real(0, 1, min_open=True, max_open=True),
    help="Pass if max|error| <= atol + rtol * max|gradient|.",
)
@click.option(
    "--atol",
    default=None,
    type=Real(0),
    help="Absolute tolerance (>= 0). Default: 1e-10 x max(1, max|loss|), the "
    "float64 finite-difference noise floor.",
)
@format_option()
def check(
    loss_specs: tuple[tuple[str, dict[str, Any]], ...],
    classes: int,
    samples: int,
    seed: int,
    rtol: float,
    atol: float | None,
    fmt: str,
) -> None:
    if classes * samples > MAX_SCORES:
        msg = (
            f"--classes {classes} x --samples {samples} = {classes * samples:,} "
            f"scores per input family, more than {MAX_SCORES:,} (the finite "
            "differences hold about 0.75 KB a score); lower --samples or --classes"
        )
        raise click.UsageError(msg)
    losses = _plan(loss_specs, classes)
    batches = input_families(samples, classes, seed)
    for loss in losses:
        if loss.skip_reason is None:
            _run(loss, batches, rtol, atol)
    failed = [x.spec for x in losses if x.status == "failed"]
    infinite = [x.spec for x in losses if x.status == "infinite"]
    unresolved = [x.spec for x in losses if x.status == "unresolved"]
    empty = [x.spec for x in losses if x.explicit and x.status == "skipped"]
    if failed or infinite or unresolved:
        overall = "failed" if failed else "infinite" if infinite else "unresolved"
    else:
        overall = "passed" if any(x.status == "passed" for x in losses) else "skipped"
    if fmt == "json":
        doc = {
            "command": "check",
            "classes": classes,
            "samples": samples,
            "seed": seed,
            "rtol": rtol,
            "atol": atol,
            "status": overall,
            "losses": [x.as_json() for x in losses],
        }
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
    else:
        _print_report(losses, rtol, atol)
    if failed:
        parts = []
        for status, what in (
            ("failed", "analytic gradients disagree with finite differences"),
            ("error", "an error was raised on some inputs (see the notes)"),
        ):
            specs = [x.spec for x in losses if x.any_family(status)]
            if specs:
                parts.append(f"{what}: {', '.join(specs)}")
        raise click.ClickException("; ".join(parts))
    if infinite:
        msg = (
            f"the loss is infinite at some rows: {', '.join(infinite)} (finite "
            "differences cannot check a gradient there)"
        )
        raise click.ClickException(msg)
    if unresolved:
        msg = (
            f"the loss is too large to resolve its gradient at some rows: "
            f"{', '.join(unresolved)} (its rounding exceeds the gradient)"
        )
        raise click.ClickException(msg)
    if empty or overall == "skipped":
        names = ", ".join(empty) or "any loss"
        msg = f"nothing was compared for {names}: every row sits on a kink"
        raise click.ClickException(msg)


def _plan(
    loss_specs: Sequence[tuple[str, dict[str, Any]]], classes: int
) -> list[_Loss]:
    """The losses to check, their parameters validated for ``classes`` first."""
    from .. import LOSSES

    if loss_specs:
        for name, params in loss_specs:
            check_loss_params(name, params, classes)
        return [_Loss(name, dict(params), explicit=True) for name, params in loss_specs]
    plan = []
    for name, info in LOSSES.items():
        loss = _Loss(name, {}, explicit=False)
        default_k = info.params.get("k")
        if isinstance(default_k, int) and default_k >= classes:
            loss.params = {"k": classes - 1}
            loss.note = (
                f"default k={default_k} needs more than {classes} classes; "
                f"checked with k={classes - 1}"
            )
        try:
            check_loss_params(name, loss.params, classes)
        except click.BadParameter as exc:
            loss.skip_reason = f"skipped: {one_line(exc)}"
        plan.append(loss)
    return plan


def _run(
    loss: _Loss,
    batches: dict[str, tuple[Any, Any]],
    rtol: float,
    atol: float | None,
) -> None:
    import numpy as np

    from .. import gradcheck

    for family, (logits, labels) in batches.items():
        n = len(labels)
        try:
            # A loss that overflows (hinge:margin=1e308) shows as an "infinite"
            # family, not as NumPy's warnings on stderr.
            with np.errstate(all="ignore"):
                res = gradcheck(
                    loss.name, logits, labels, rtol=rtol, atol=atol, **loss.params
                )
        except (ValueError, TypeError, ArithmeticError) as exc:
            loss.families[family] = _Family("error", n, message=one_line(exc))
            continue
        except Exception as exc:
            if user_loss_of(exc) is None:
                raise  # arrayloss's own: an internal error
            # a user's loss failing on these scores: that family's result
            message = one_line(f"{type(exc).__name__}: {one_line(exc)}")
            loss.families[family] = _Family("error", n, message=message)
            continue
        loss.families[family] = _Family(
            res.status,
            n,
            checked=res.n_checked,
            at_kink=res.n_at_kink,
            failed=res.n_failed,
            infinite=res.n_infinite,
            unresolved=res.n_unresolved,
            max_abs_error=res.max_abs_error,
            max_rel_error=res.max_rel_error,
            below_noise_floor=res.n_checked > 0 and res.below_noise_floor,
        )


def _cell(f: _Family | None) -> str:
    if f is None:
        return "-"
    if f.status == "error":
        return "error"
    if f.status == "skipped":
        return "at kink"
    if f.status in ("infinite", "unresolved") and not f.checked:
        return f.status
    text = f"{f.max_rel_error:.1e}" + ("*" if f.below_noise_floor else "")
    if f.status in ("infinite", "unresolved"):
        return f"{text} {f.status}"
    return f"{text} FAIL" if f.status == "failed" else text


def _print_report(losses: Sequence[_Loss], rtol: float, atol: float | None) -> None:
    rows = []
    notes = []
    for x in losses:
        cells = [_cell(x.families.get(k)) for k in FAMILIES]
        status = (
            "skipped" if x.skip_reason else {"passed": "ok"}.get(x.status, x.status)
        )
        rows.append(
            (
                x.spec,
                f"{x.total('checked')}/{x.total('rows')}",
                str(x.total("at_kink")),
                *cells,
                "FAIL" if status == "failed" else status,
            )
        )
        for text in (x.note, x.skip_reason):
            if text:
                notes.append(f"{x.spec}: {text}")
        for k, f in x.families.items():
            if f.message:
                notes.append(f"{x.spec} [{k}]: error: {f.message}")
    _print_table(("loss", "rows checked", "at kink", *FAMILIES, "status"), rows)
    floor = f"{atol:g}" if atol is not None else "1e-10 x max(1, |loss|)"
    click.echo(
        "\nmax |analytic - numeric| / max |numeric| per input family; a row passes when "
        f"the error is <= {rtol:g} x max |numeric| + {floor} (the default is the "
        "float64 finite-difference noise floor, which dominates where gradients are "
        "tiny, e.g. saturated softmax rows). *: every gradient entry of the family "
        "is below that floor, so only absolute agreement was checked and the "
        "relative error says nothing. Rows within 1e-3 of a kink are not compared "
        "('at kink'), nor rows where the loss is infinite ('infinite') or so large "
        "that its rounding exceeds 1 and the row's gradient ('unresolved')."
    )
    for note in notes:
        click.echo(f"note: {note}")


def _print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        click.echo(
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        )
