"""Operations commands: jobs (list, cancel), backup (an online copy of the catalog), gc (retention)."""

from __future__ import annotations

import argparse

from app.operations import backup, cancel_job, job_doc, list_jobs
from app.retention import collect
from service.context import Services
from service.output import kv, print_json, table


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("jobs", parents=[common], help="recent jobs and their progress; `jobs cancel ID` stops one")
    p.add_argument("--kind")
    p.add_argument("--state", choices=("running", "succeeded", "failed", "cancelled", "abandoned"))
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(handler=cmd_jobs)
    actions = p.add_subparsers(dest="jobs_command", metavar="ACTION")
    c = actions.add_parser("cancel", parents=[common],
                           help="stop a running job at its next batch (what it finished stays; rerun to resume)")
    c.add_argument("job_id")
    c.set_defaults(handler=cmd_jobs_cancel)

    b = sub.add_parser("backup", parents=[common],
                       help="copy the catalog with SQLite's online backup (other commands may keep running)")
    b.add_argument("--out", help="a file or folder (default: SKYSCOUT_HOME/backups)")
    b.set_defaults(handler=cmd_backup)

    g = sub.add_parser("gc", parents=[common],
                       help="delete what the retention policy does not keep (old model files, finished checkpoints)")
    g.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    g.add_argument("--keep-candidates", type=int, help="model versions kept besides the active one and its parent "
                   "(default: SKYSCOUT_KEEP_CANDIDATES)")
    g.add_argument("--keep-checkpoints", action=argparse.BooleanOptionalAction, default=None,
                   help="keep finished runs' checkpoints (default: SKYSCOUT_KEEP_CHECKPOINTS)")
    g.set_defaults(handler=cmd_gc)


def cmd_jobs(args: argparse.Namespace) -> int:
    jobs = list_jobs(Services().app, kind=args.kind, state=args.state, limit=args.limit)
    if args.json:
        print_json([job_doc(j) for j in jobs])
    else:
        print(table([(j.id, j.kind, j.state, j.done, j.total, j.error or "") for j in jobs],
                    ["id", "kind", "state", "done", "total", "error"]))
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    job = cancel_job(Services().app, args.job_id)
    doc = job_doc(job)
    if args.json:
        print_json(doc)
    elif job.state == "running":
        print(f"job {job.id} ({job.kind}) will stop at its next batch; run the same command again to resume it")
    else:
        print(f"job {job.id} ({job.kind}) is {job.state}: {job.error}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    doc = backup(Services().app, args.out)
    print_json(doc) if args.json else print(kv(list(doc.items())))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    report = collect(Services().app, keep_candidates=args.keep_candidates, keep_checkpoints=args.keep_checkpoints,
                     dry_run=args.dry_run)
    doc = report.to_dict()
    if args.json:
        print_json(doc)
        return 0
    verb = "would delete" if report.dry_run else "deleted"
    for d in report.deleted:
        print(f"{verb} {d['path']} ({d['bytes'] / 1e6:.1f} MB): {d['why']}")
    for name in report.dropped_indexes:
        print(f"{'would drop' if report.dry_run else 'dropped'} index {name}")
    print(f"kept models: {', '.join(report.kept_models) or 'none'}; {verb} {report.freed_bytes / 1e6:.1f} MB")
    return 0
