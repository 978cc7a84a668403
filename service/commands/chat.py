"""``skyscout chat``: an interactive session with the agents, one thread per session, steps streamed live."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from service.context import AppContext

HELP = """Type a request in plain words, e.g. "find beaches", "how good is the model?", "why did you retrain?".
Commands: /new (start a new thread), /thread (show the thread id), /quit (or Ctrl-D)."""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("chat", help="an interactive session with the agents (history kept per thread)")
    p.add_argument("--thread", help="continue this thread (default: a new one)")
    p.set_defaults(handler=cmd_chat)


def describe(update: dict[str, Any]) -> list[str]:
    """Readable lines for one graph update: which agent ran which tool, and how it went."""
    lines = []
    for node, change in update.items():
        if not isinstance(change, dict):
            continue
        for result in change.get("results", []) or []:
            first = ((result.get("summary") or "").splitlines() or [""])[0]
            lines.append(f"  [{result['agent']}/{result['action']}] {result['status']}: {first}")
        if node == "supervisor" and change.get("plan") and not change.get("results"):
            steps = ", ".join(f"{s['agent']}/{s['action']}" for s in change["plan"])
            lines.append(f"  plan: {steps}")
    return lines


def chat_loop(runner: Any, thread_id: str, stdin: TextIO, stdout: TextIO) -> None:
    from graph.runner import new_thread_id

    print(HELP, file=stdout)
    print(f"thread {thread_id}", file=stdout)
    while True:
        stdout.write("you> ")
        stdout.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/thread":
            print(f"thread {thread_id}", file=stdout)
            continue
        if text == "/new":
            thread_id = new_thread_id()
            print(f"new thread {thread_id}", file=stdout)
            continue
        try:
            for update in runner.stream(text, thread_id=thread_id):
                for out in describe(update):
                    print(out, file=stdout, flush=True)
            outcome = runner.outcome(thread_id)
            print(f"skyscout> {outcome.answer or '(no answer)'}", file=stdout, flush=True)
        except ValueError as exc:  # e.g. a thread waiting for approval
            print(f"skyscout> {exc}", file=stdout, flush=True)


def cmd_chat(args: argparse.Namespace) -> int:
    from graph.runner import new_thread_id

    ctx = AppContext()
    runner = ctx.agent_runner()
    runner.deps.progress = False
    try:
        chat_loop(runner, args.thread or new_thread_id(), sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        print()
    return 0
