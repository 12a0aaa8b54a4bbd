"""The ``arrayloss`` command line.

Subcommands live in their own modules and are imported only when used, so
``arrayloss --help`` does not import NumPy or SciPy.

Exit codes: 0 success; 1 bad data or a failed check; 2 bad usage.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["main"]

# name -> (module, attribute); imported on first use.
_COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("arrayloss.cli._check", "check"),
    "eval": ("arrayloss.cli._eval", "eval_command"),
    "list": ("arrayloss.cli._list", "list_command"),
    "study": ("arrayloss.cli._study", "study"),
    "train": ("arrayloss.cli._train", "train"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 success; 1 bad data or a failed check; 2 bad usage.",
)
@click.version_option(package_name="arrayloss")
def main(**_: Any) -> None:
    """Classification losses with exact gradients, without a deep-learning framework."""
