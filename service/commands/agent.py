"""Agent commands: ask (a request in plain words, through the agent graph), improve (one planner round),
decisions (the planner's decision log).

``skyscout ask "ingest ./tiles, train a model and find beaches"`` runs the request durably on a thread (its
id is printed); ``--thread ID`` continues an unfinished run or answers an approval (``--approve`` /
``--reject``). ``--dry-run --json`` prints how the request is understood without running it; with ``-``
as the request it reads one request a line from stdin and prints one JSON object a line. Every one of
these runs through the compiled agent graph (:class:`graph.runner.AgentRunner`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from service.commands.events import EventPrinter
from service.context import Services
from service.output import print_json, table


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
    p.set_defaults(handler=cmd_improve)

    p = sub.add_parser("policy", parents=[common], help="the planner's effective policy and the rounds' training")
    p.set_defaults(handler=cmd_policy)

    p = sub.add_parser("decisions", parents=[common], help="the planner's decision log, newest first")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--action", help="only decisions of this action (e.g. retrain, promote, reindex)")
    p.set_defaults(handler=cmd_decisions)


# -- ask --------------------------------------------------------------------------------------------


def _plan_line(doc: dict[str, Any]) -> str:
    return " -> ".join(f"{s['intent']} {json.dumps(s.get('args') or {})}" for s in doc["plan"])


def _print_reading(doc: dict[str, Any]) -> None:
    print(f"intent: {doc['intent']}  args: {json.dumps(doc['args'])}")
    print(f"plan: {_plan_line(doc)}")
    if doc.get("message"):
        print(doc["message"])
    for step in doc["steps"]:
        print(f"  {step['id']} {step['agent']}/{step['action']} {json.dumps(step['args'])}  ({step['reason']})")


def _dry_run(services: Services, args: argparse.Namespace) -> int:
    runner = services.runner()

    def reading(text: str) -> dict[str, Any]:
        return dict(runner.dry_run(text).interpretation or {})

    if args.request != "-":
        doc = reading(args.request)
        print_json(doc) if args.json else _print_reading(doc)
        return 0
    for line in sys.stdin:
        if line.strip():
            doc = reading(line.strip())
            if args.json:
                sys.stdout.write(json.dumps(doc, default=str, ensure_ascii=False) + "\n")
            else:
                print(f"{line.strip()}\n  -> {_plan_line(doc)}")
            sys.stdout.flush()
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    if args.dry_run and not args.request:
        raise ValueError("give the request to interpret (or '-' to read one a line from stdin)")
    if args.request == "-" and not args.dry_run:
        raise ValueError("'-' (requests from stdin) needs --dry-run; give the request as an argument")
    if not args.request and not args.thread:
        raise ValueError("give a request (e.g. skyscout ask \"find beaches\") or --thread ID to continue")
    services = Services()
    if args.dry_run:
        return _dry_run(services, args)
    approve = True if args.approve else False if args.reject else None
    outcome = services.runner().run(args.request, thread_id=args.thread, approve=approve,
                                    on_event=EventPrinter(enabled=not (args.json or args.no_progress)))
    if args.json:
        print_json(outcome.to_dict())
    else:
        print(outcome.answer or "")
        print(f"\nthread: {outcome.thread_id} ({outcome.status})")
    return 1 if failed(outcome.status, outcome.results) else 0


def failed(status: str, results: list[dict[str, Any]]) -> bool:
    """A request failed when the run did, or when any of its steps did (the exit code says so)."""
    return status == "failed" or any(r.get("status") == "failed" for r in results)


# -- improve ----------------------------------------------------------------------------------------


def _improve_dry_run(services: Services, as_json: bool) -> int:
    outcome = services.runner().dry_run("improvement round", intents=[{"intent": "improve"}])
    improve = [r for r in outcome.results if r["action"] == "improve"]
    proposals: list[dict[str, Any]] = improve[0]["data"].get("decisions", []) if improve else []
    if as_json:
        print_json({"dry_run": True, "decisions": proposals})
    else:
        for d in proposals:
            print(f"{d['action']}: {d['reason']}")
    return 0


def cmd_improve(args: argparse.Namespace) -> int:
    from service.scheduler import ImprovementLoop, improvement_tick

    services = Services()
    if args.dry_run:
        return _improve_dry_run(services, args.json)
    if args.every and not args.once:
        return _improve_forever(services, args.every)
    loop = ImprovementLoop(lambda: improvement_tick(
        services, on_event=EventPrinter(enabled=not (args.json or args.no_progress))),
        interval=0, lock_path=services.settings.home / "improve.lock")
    result = loop.run_once()
    if args.json:
        print_json(result)
    else:
        print(result["answer"] or "")
        print(f"\nthread: {result['thread_id']} ({result['status']})")
    return 1 if result["status"] == "failed" or result["errors"] else 0


def _improve_forever(services: Services, every: str) -> int:
    import logging

    from service.scheduler import ImprovementLoop, improvement_tick, parse_interval

    logging.getLogger("service.scheduler").setLevel(logging.INFO)
    interval = parse_interval(every)

    def tick() -> Any:
        result = improvement_tick(services)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        decided = "; ".join(f"{d['action']} ({d['outcome']})" for d in result["decisions"]) or "none"
        print(f"[{stamp}] tick on {result['thread_id']} ({result['status']}): ingested {result['ingested']}; "
              f"decisions: {decided}", flush=True)
        return result

    loop = ImprovementLoop(tick, interval=interval, lock_path=services.settings.home / "improve.lock")
    print(f"improvement loop: a tick every {every}; Ctrl-C stops it", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        loop.stop()
    return 0


# -- policy -----------------------------------------------------------------------------------------


def cmd_policy(args: argparse.Namespace) -> int:
    """The policy and round training in force: defaults, then the settings file, then SKYSCOUT_POLICY."""
    from agents.policy import ROUND_TRAINING, PlannerPolicy

    services = Services()
    policy = PlannerPolicy(**services.settings.policy).model_dump()  # only the settings are read
    training = {**ROUND_TRAINING, **services.settings.round_training}
    if args.json:
        print_json({"policy": policy, "round_training": training, "set_in_settings": sorted(services.settings.policy)})
        return 0
    fields = PlannerPolicy.model_fields
    rows = [(k, v, "settings" if k in services.settings.policy else "default", fields[k].description or "")
            for k, v in policy.items()]
    print(table(rows, ["policy", "value", "from", "meaning"]))
    print("\nround training (over the model's recipe): " + json.dumps(training))
    return 0


# -- decisions --------------------------------------------------------------------------------------


def cmd_decisions(args: argparse.Namespace) -> int:
    rows = Services().app.catalog.decisions(limit=args.limit, action=args.action)
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
