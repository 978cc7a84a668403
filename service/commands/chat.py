"""``skyscout chat``: an interactive session with the agents, one thread per session, steps streamed live."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from service.commands.events import EventPrinter
from service.context import Services

if TYPE_CHECKING:
    from graph.runner import AgentRunner

HELP = """Type a request in plain words, e.g. "find beaches", "how good is the model?", "why did you retrain?".
Commands: /new (start a new thread), /thread (show the thread id), /quit (or Ctrl-D)."""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("chat", help="an interactive session with the agents (history kept per thread)")
    p.add_argument("--thread", help="continue this thread (default: a new one)")
    p.set_defaults(handler=cmd_chat)


def _command(text: str, thread_id: str, stdout: TextIO) -> str | None:
    """Handle a ``/`` command; returns the (possibly new) thread id, or None to quit."""
    from graph.runner import new_thread_id

    if text in ("/quit", "/exit"):
        return None
    if text == "/new":
        thread_id = new_thread_id()
        print(f"new thread {thread_id}", file=stdout)
    else:
        print(f"thread {thread_id}", file=stdout)
    return thread_id


def chat_loop(runner: AgentRunner, thread_id: str, stdin: TextIO, stdout: TextIO) -> None:
    print(HELP, file=stdout)
    print(f"thread {thread_id}", file=stdout)
    show = EventPrinter(stdout)
    while True:
        stdout.write("you> ")
        stdout.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if text.startswith("/"):
            new_thread = _command(text, thread_id, stdout)
            if new_thread is None:
                break
            thread_id = new_thread
            continue
        if not text:
            continue
        try:
            outcome = runner.run(text, thread_id=thread_id, on_event=show)
            print(f"skyscout> {outcome.answer or '(no answer)'}", file=stdout, flush=True)
        except ValueError as exc:  # e.g. a thread waiting for approval
            print(f"skyscout> {exc}", file=stdout, flush=True)


def cmd_chat(args: argparse.Namespace) -> int:
    from graph.runner import new_thread_id

    try:
        chat_loop(Services().runner(), args.thread or new_thread_id(), sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        print()
    return 0
