"""The reply a run ends with: one line per step, then the decisions taken and how each turned out."""

from __future__ import annotations

from collections.abc import Sequence

from agents.records import Step, StepResult
from graph.state import DecisionRecord
from prompts.agents import ANSWER_DECISION, ANSWER_DECISIONS_HEADER, ANSWER_HEADER, ANSWER_NOTHING, ANSWER_STEP


def _short(outcome: str) -> str:
    """``ok``/``failed``/``skipped`` alone (the step line says the rest); other outcomes cut to a line."""
    head, sep, _ = outcome.partition(":")
    if sep and head in ("ok", "failed"):
        return head
    return outcome if len(outcome) <= 100 else outcome[:97] + "..."


def format_answer(request: str, plan: Sequence[Step], results: Sequence[StepResult],
                  decisions: Sequence[DecisionRecord], outcomes: dict[int, str] | None = None) -> str:
    """The reply shown to the user."""
    outcomes = outcomes or {}
    lines = [ANSWER_HEADER.format(request=request)]
    by_step = {r["step"]: r for r in results}
    shown = [by_step[s["id"]] for s in plan if s["id"] in by_step]
    lines += [ANSWER_STEP.format(n=n, agent=r["agent"], action=r["action"], status=r["status"], summary=r["summary"])
              for n, r in enumerate(shown, start=1)]
    if not shown:
        lines.append(ANSWER_NOTHING)
    if decisions:
        lines.append(ANSWER_DECISIONS_HEADER)
        lines += [ANSWER_DECISION.format(id=d["id"], action=d["action"], actor=d["actor"], reason=d["reason"],
                                         outcome=f" -> {_short(outcomes[d['id']])}" if d["id"] in outcomes else "")
                  for d in decisions]
    return "\n".join(lines)


__all__ = ["format_answer"]
