"""``arrayloss list``: the losses of the registry with their parameters."""

from __future__ import annotations

import json
from typing import Any

import click

from ._options import format_option, json_params

__all__ = ["list_command"]

_HELP = """List every loss with its parameters, defaults and accepted labels.

Pass a loss to other commands as NAME or NAME:param=value,... (for example
smooth_topk_svm:k=5,tau=0.5).

\b
--format json prints one object with the key losses: a list, in registry
order, of objects with
  name     the registry name (str)
  params   each parameter and its default (an object; null for None)
  targets  the accepted labels, a list of "index" and "soft"
  summary  one line saying what the loss is (str)
With --names-only, --format json prints the list of names.
"""


@click.command("list", help=_HELP)
@click.option("--names-only", is_flag=True, help="Print only the names, one per line.")
@format_option()
def list_command(names_only: bool, fmt: str) -> None:
    from .. import LOSSES

    if fmt == "json":
        doc: Any
        if names_only:
            doc = list(LOSSES)
        else:
            doc = {
                "losses": [
                    {
                        "name": name,
                        "params": json_params(info.params),
                        "targets": info.targets.split("|"),
                        "summary": info.summary,
                    }
                    for name, info in LOSSES.items()
                ]
            }
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
        return
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
