"""The ``skyscout`` command line: ``main(argv)`` parses, dispatches, and turns known errors into messages."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from service.commands import agent, chat, concepts, data, model, ops, scenes, search, serve
from service.output import print_json

#: Exceptions whose message is already written for the user: printed without a traceback, exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, ValueError, LookupError,
)

# Modules that add sub-commands; each has register(subparsers, common) -> None.
COMMAND_MODULES: list[Callable[..., None]] = [
    data.register, model.register, search.register, agent.register, chat.register, serve.register,
    scenes.register, ops.register, concepts.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyscout",
        description="Zero-shot search in satellite imagery: ingest, caption, train, index, search.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMAND_MODULES:
        register(sub, common)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that a running job records how it ended (cancelled, resumable)."""


def _on_sigterm(signum: int, _frame: object) -> None:
    raise Terminated(f"signal {signal.Signals(signum).name}")


def is_user_error(exc: BaseException) -> bool:
    """Built-in user errors, errors our tools raise on purpose, and those marked ``for_user`` carry a message
    written for the user; anything else is a bug and keeps its traceback."""
    return (isinstance(exc, USER_ERRORS) or type(exc).__module__.startswith("tools.")
            or bool(getattr(exc, "for_user", False)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (0 ok, 2 a user error, 1 an unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return _run(args)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        message = str(exc) if str(exc) else type(exc).__name__
        if getattr(args, "json", False):
            print_json({"error": message, "type": type(exc).__name__})
        else:
            print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("interrupted; finished work is kept and the job can be started again", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
