"""The ``handssca`` command line: parses arguments and calls the package's functions."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_info(args: argparse.Namespace) -> int:
    from handssca import environment as env

    sections = [env.versions_section(), env.devices_section()]
    print(env.format_sections(sections))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    from handssca import __version__

    parser = argparse.ArgumentParser(
        prog="handssca",
        description="3D hand mesh reconstruction from one RGB image (HandSSCA).",
    )
    parser.add_argument("--version", action="version", version=f"handssca {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="versions, devices, kernels, hand model and parameter counts")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``handssca`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
