"""The command line: ``python -m sfoauth_async <command>``."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

__all__ = ["main"]


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sfoauth_async",
        description="Salesforce OAuth 2.0 tokens for asyncio.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run thousands of tasks through several token expiries against a fake org",
        description="Starts the embedded fake Salesforce org (no account needed), runs each "
        "grant end to end, then many concurrent tasks through several session expiries, "
        "and prints requests, token requests, 401s and latency.",
    )
    demo.add_argument("--tasks", type=_count, default=2000, help="concurrent tasks (2000)")
    demo.add_argument("--seconds", type=_positive, default=12.0, help="load duration (12)")
    demo.add_argument(
        "--lifetime", type=_positive, default=4.0, help="session lifetime in seconds (4)"
    )
    demo.add_argument(
        "--think", type=_positive, default=2.0, help="mean pause between a task's requests (2)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Example:
        ```python
        raise SystemExit(main(["demo", "--tasks", "100", "--seconds", "3"]))
        ```
    """
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo  # noqa: PLC0415 - the demo pulls in the fake org

        result = asyncio.run(
            run_demo(
                tasks=args.tasks,
                seconds=args.seconds,
                lifetime_s=args.lifetime,
                think_s=args.think,
            )
        )
        return 0 if result.failed == 0 else 1
    return 2  # pragma: no cover - argparse rejects unknown commands
