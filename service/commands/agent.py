"""Agent commands: ask (a request in plain words, through the agent graph), improve (one planner round),
decisions (the planner's decision log).

``skyscout ask "ingest ./tiles, train a model and find beaches"`` runs the request durably on a thread (its
id is printed); ``--thread ID`` continues an unfinished run or answers an approval (``--approve`` /
``--reject``). ``--dry-run --json`` prints how the request is understood without running it; with ``-``
as the request it reads one request a line from stdin and prints one JSON object a line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from service.context import AppContext
from service.output import print_json, table

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agents.deps import AgentDeps


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ask", parents=[common], help="run a request in plain words through the agents")
    p.add_argument("request", nargs="?",
                   help="what to do, e.g. \"ingest ./tiles, train a model and find beaches\"; '-' reads one "
                        "request a line from stdin (with --dry-run)")
    p.add_argument("--thread", help="the run's thread id: continue an unfinished run, or answer an approval")
    p.add_argument("--dry-run", action="store_true", help="print how the request is understood; run nothing")
    answer = p.add_mutually_exclusive_group()
    answer.add_argument("--approve", action="store_true", help="approve the step the thread waits for")
    answer.add_argument("--reject", action="store_true", help="decline the step the thread waits for")
    p.set_defaults(handler=cmd_ask)

    p = sub.add_parser("improve", parents=[common], help="run one planner improvement round")
    p.add_argument("--once", action="store_true", help="one round, then exit (the default without --every)")
    p.add_argument("--every", metavar="INTERVAL",
                   help="keep running: a tick (ingest watched folders, then a planner round) every INTERVAL, "
                        "e.g. 30m, 6h, 1d; one tick at a time across processes")
    p.add_argument("--dry-run", action="store_true", help="show the decisions; act on nothing")
    p.add_argument("--thread", help="thread id for the round (default: a new one)")
    p.set_defaults(handler=cmd_improve)

    p = sub.add_parser("decisions", parents=[common], help="the planner's decision log, newest first")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--action", help="only decisions of this action (e.g. retrain, promote, reindex)")
    p.set_defaults(handler=cmd_decisions)


# -- wiring ---------------------------------------------------------------------------------------------


def agent_deps(ctx: AppContext) -> AgentDeps:
    """The agents' dependencies, built once by the context (shared model cache and store registries)."""
    return ctx.agent_deps()


def chat_model(ctx: AppContext) -> BaseChatModel | None:
    """The configured chat model (SKYSCOUT_LLM[_BASE_URL|_API_KEY]); None for the offline router."""
    return ctx.chat_model()


def _checkpoint_path(ctx: AppContext) -> Any:
    from graph.runner import default_checkpoint_path

    return default_checkpoint_path(ctx.settings.home)


# -- ask --------------------------------------------------------------------------------------------


def _dry_run(args: argparse.Namespace, llm: BaseChatModel | None) -> int:
    from agents.planner import PlannerPolicy, interpret
    from agents.router import default_router

    router = None if llm is not None else default_router()  # loaded once for every line
    policy = PlannerPolicy()

    def reading(text: str) -> dict[str, Any]:
        return interpret(text, router=router, llm=llm, policy=policy).summary()

    if args.request == "-":
        for line in sys.stdin:
            if line.strip():
                doc = reading(line.strip())
                if args.json:
                    sys.stdout.write(json.dumps(doc, default=str, ensure_ascii=False) + "\n")
                else:
                    print(f"{line.strip()}\n  -> {_plan_line(doc)}")
                sys.stdout.flush()
        return 0
    doc = reading(args.request)
    if args.json:
        print_json(doc)
        return 0
    print(f"intent: {doc['intent']}  args: {json.dumps(doc['args'])}")
    print(f"plan: {_plan_line(doc)}")
    if doc.get("message"):
        print(doc["message"])
    for step in doc["steps"]:
        args_text = json.dumps(step["args"])
        print(f"  {step['id']} {step['agent']}/{step['action']} {args_text}  ({step['reason']})")
    return 0


def _plan_line(doc: dict[str, Any]) -> str:
    return " -> ".join(f"{s['intent']} {json.dumps(s.get('args') or {})}" for s in doc["plan"])


def _printer(enabled: bool) -> Any:
    def show(update: dict[str, Any]) -> None:
        if not enabled:
            return
        for node, change in update.items():
            if not isinstance(change, dict):
                continue
            for result in change.get("results", [])[-1:] if node != "supervisor" else []:
                print(f"[{result['step']} {result['agent']}/{result['action']}] {result['status']}: "
                      f"{result['summary'].splitlines()[0]}", file=sys.stderr, flush=True)

    return show


def cmd_ask(args: argparse.Namespace) -> int:
    ctx = AppContext()
    llm = chat_model(ctx)
    if args.dry_run:
        if not args.request:
            raise ValueError("give the request to interpret (or '-' to read one a line from stdin)")
        return _dry_run(args, llm)
    if args.request == "-":
        raise ValueError("'-' (requests from stdin) needs --dry-run; give the request as an argument")
    if not args.request and not args.thread:
        raise ValueError("give a request (e.g. skyscout ask \"find beaches\") or --thread ID to continue")
    from graph.runner import AgentRunner, sqlite_checkpointer

    approve = True if args.approve else False if args.reject else None
    deps = agent_deps(ctx)
    deps.progress = False
    with sqlite_checkpointer(_checkpoint_path(ctx)) as saver:
        runner = AgentRunner(deps, checkpointer=saver, llm=llm, router=_lazy_router)
        outcome = runner.run(args.request, thread_id=args.thread, approve=approve,
                             on_update=_printer(not (args.json or args.no_progress)))
    if args.json:
        print_json(outcome.to_dict())
    else:
        print(outcome.answer or "")
        print(f"\nthread: {outcome.thread_id} ({outcome.status})")
    return 1 if outcome.status == "failed" else 0


def _lazy_router() -> Any:
    from agents.router import default_router

    return default_router()


# -- improve ----------------------------------------------------------------------------------------


def cmd_improve(args: argparse.Namespace) -> int:
    ctx = AppContext()
    if args.every and not args.once:
        return _improve_forever(ctx, args.every)
    llm = chat_model(ctx)
    deps = agent_deps(ctx)
    deps.progress = False
    if args.dry_run:
        from agents.planner import run_improvement_round

        proposals = run_improvement_round(deps, llm=llm, dry_run=True)
        if args.json:
            print_json({"dry_run": True, "decisions": [d.model_dump() for d in proposals]})
        else:
            for d in proposals:
                print(f"{d.action}: {d.reason}")
        return 0
    from graph.runner import AgentRunner, sqlite_checkpointer

    with sqlite_checkpointer(_checkpoint_path(ctx)) as saver:
        runner = AgentRunner(deps, checkpointer=saver, llm=llm, router=_lazy_router)
        outcome = runner.run("improvement round", thread_id=args.thread, intents=[{"intent": "improve"}],
                             on_update=_printer(not (args.json or args.no_progress)))
    ids = [d["id"] for d in outcome.decisions if d.get("id") is not None]
    records = [d for d in deps.catalog.decisions(limit=max(50, 2 * len(ids))) if d["id"] in set(ids)]
    records.sort(key=lambda d: d["id"])
    if args.json:
        print_json({**outcome.to_dict(), "decisions": records})
    else:
        print(outcome.answer or "")
        print(f"\nthread: {outcome.thread_id} ({outcome.status})")
    return 1 if outcome.status == "failed" else 0


def _improve_forever(ctx: AppContext, every: str) -> int:
    import logging

    from service.scheduler import ImprovementLoop, improvement_tick, parse_interval

    logging.getLogger("service.scheduler").setLevel(logging.INFO)
    interval = parse_interval(every)

    def tick() -> Any:
        result = improvement_tick(ctx)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"[{stamp}] tick: ingested {result['ingested']}; decisions: "
              + ("; ".join(f"{d['action']} ({d['outcome']})" for d in result["decisions"]) or "none"), flush=True)
        return result

    loop = ImprovementLoop(tick, interval=interval, lock_path=ctx.settings.home / "improve.lock")
    print(f"improvement loop: a tick every {every}; Ctrl-C stops it", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        loop.stop()
    return 0


# -- decisions --------------------------------------------------------------------------------------


def cmd_decisions(args: argparse.Namespace) -> int:
    ctx = AppContext()
    rows = ctx.catalog.decisions(limit=args.limit, action=args.action)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no decisions recorded yet")
        return 0
    print(table([(d["id"], time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["created_at"])), d["actor"],
                  d["action"], d["reason"], d["outcome"]) for d in rows],
                ["id", "when", "actor", "action", "reason", "outcome"]))
    return 0
