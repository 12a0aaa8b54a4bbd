"""``arrayloss list``: the losses of the registry with their parameters."""

from __future__ import annotations

import click

__all__ = ["list_command"]


@click.command("list")
@click.option("--names-only", is_flag=True, help="Print only the names, one per line.")
def list_command(names_only: bool) -> None:
    """List every loss with its parameters, defaults and accepted labels.

    Pass a loss to other commands as NAME or NAME:param=value,... (for example
    smooth_topk_svm:k=5,tau=0.5).
    """
    from .. import LOSSES

    if names_only:
        for name in LOSSES:
            click.echo(name)
        return
    rows = [
        (
            name,
            ", ".join(f"{k}={v!r}" for k, v in info.params.items()) or "-",
            info.targets,
            info.summary,
        )
        for name, info in LOSSES.items()
    ]
    header = ("name", "parameters", "labels", "summary")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for r in [header, *rows]:
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True))
            + "  "
            + r[3]
        )
