"""The promotion guardrails: when a candidate may replace the active model, and how sure that is.

:func:`check_promotion` compares the candidate with the active model on the held-out split of the
candidate's dataset version, image by image (:func:`tools.stats.paired_difference`), on the first of the
policy's primary metrics both have. It says ``promote`` only when the candidate is better by more than
``promotion_margin`` *and* the whole interval of the paired difference lies above that margin, on at least
``min_eval_images`` images, and no primary metric drops by more than ``guard_regression_margin`` on the
held-out split nor on the guard set, and its mean judged average precision on the users' held-back marks
(:func:`app.evaluation.judged_pair`: marks on images no model trained on) does not drop by more than
``judged_margin``. Otherwise ``keep_active``, with the reason and the evidence: both
models' metrics, the difference with its interval and sample size, the candidate's per-class top-1 and
its most frequent confusions. No model output can override these rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.policy import Decision, PlannerPolicy
from prompts.planner import REASONS
from tools.catalog import Catalog
from tools.modelref import active_model_key, headline, per_image_scores, stored_evaluation
from tools.stats import PairedDifference, paired_difference, top_confusions


def _regressions(cand: dict[str, float], act: dict[str, float], metrics: Sequence[str], margin: float) -> list[str]:
    return [f"{k} {cand[k]:.4f} vs {act[k]:.4f} ({cand[k] - act[k]:+.4f})"
            for k in metrics if k in cand and k in act and cand[k] - act[k] < -margin]


def _class_evidence(evaluation: dict[str, Any]) -> dict[str, Any]:
    zs = evaluation.get("zeroshot") or {}
    out: dict[str, Any] = {}
    if zs.get("per_class"):
        out["candidate_per_class_top1"] = zs["per_class"]
    if zs.get("confusion"):
        out["candidate_confusions"] = top_confusions(zs["confusion"])
    return out


class _Check:
    """One promotion check: the two models' stored evaluations and the evidence gathered so far."""

    def __init__(self, catalog: Catalog, candidate: str, active: str, dataset: str | None,
                 policy: PlannerPolicy) -> None:
        self.catalog, self.candidate, self.active, self.dataset = catalog, candidate, active, dataset
        self.policy = policy
        self.split = policy.eval_split
        self.evidence: dict[str, Any] = {"candidate": candidate, "active": active, "dataset": dataset,
                                         "split": self.split}
        self.cand_eval = stored_evaluation(catalog, candidate, dataset, self.split) if dataset else {}
        self.act_eval = stored_evaluation(catalog, active, dataset, self.split) if dataset else {}

    def keep(self, reason: str, *, note: bool = True, **more: Any) -> Decision:
        """A ``keep_active`` verdict; the judged comparison, when there is one, is noted after the reason."""
        judged = self.judged_fields() if note else None
        if judged is not None:
            reason = f"{reason}; {REASONS['judged_ok'].format(**judged)}"
        return Decision(action="keep_active", reason=reason, evidence={**self.evidence, **more})

    def judged_fields(self) -> dict[str, Any] | None:
        judged = self.evidence.get("judged")
        if not judged or judged["candidate_ap"] is None or judged["active_ap"] is None:
            return None
        return dict(candidate=self.candidate, cand=judged["candidate_ap"], act=judged["active_ap"],
                    delta=judged["candidate_ap"] - judged["active_ap"], judgments=judged["judgments"],
                    queries=judged["queries"], margin=self.policy.judged_margin)

    def paired(self, metric: str) -> PairedDifference | None:
        cand, act = per_image_scores(self.cand_eval, metric), per_image_scores(self.act_eval, metric)
        if cand is None or act is None:
            return None
        return paired_difference(cand, act, confidence=self.policy.confidence)

    def guard(self) -> Decision | str:
        """A ``keep_active`` decision when the guard set blocks the promotion, else the note for the reason."""
        policy, margin = self.policy, self.policy.guard_regression_margin
        guard_ds = str(policy.guard_dataset or self.dataset)
        guard_name = f"{guard_ds}/{policy.guard_split}"
        if (guard_ds, policy.guard_split) == (self.dataset, self.split):
            return REASONS["guard_same"]
        gc = headline(stored_evaluation(self.catalog, self.candidate, guard_ds, policy.guard_split)) or None
        ga = headline(stored_evaluation(self.catalog, self.active, guard_ds, policy.guard_split)) or None
        self.evidence.update(guard=guard_name, guard_candidate_metrics=gc, guard_active_metrics=ga)
        if gc is None or ga is None:
            if self.catalog.dataset_split(guard_ds, policy.guard_split):
                return self.keep(REASONS["keep_unevaluated"].format(
                    candidate=self.candidate, active=self.active, dataset=guard_ds, split=policy.guard_split,
                    what=" (the guard set)"))
            return REASONS["guard_empty"].format(guard=guard_name)
        regressions = _regressions(gc, ga, policy.primary_metrics, margin)
        if regressions:
            return self.keep(REASONS["keep_regression"].format(
                candidate=self.candidate, where=f"the guard set {guard_name}", margin=margin,
                regressions="; ".join(regressions)), regressions=regressions)
        return REASONS["guard_ok"].format(margin=margin, guard=guard_name)

    def judged(self) -> dict[str, Any] | None:
        """Both models' judged metrics on the same held-back judgments (the candidate's newest), or None."""
        rows = self.catalog.evaluations(model=self.candidate, dataset=self.dataset, split="judged", limit=1)
        if not rows or not self.dataset:
            return None
        cand = rows[0]["metrics"]
        act = next((r["metrics"] for r in self.catalog.evaluations(model=self.active, dataset=self.dataset,
                                                                    split="judged", limit=20)
                    if r["metrics"].get("fingerprint") == cand.get("fingerprint")), None)
        if act is None:
            return None
        per_query = {q: {"candidate": m.get("average_precision"),
                         "active": (act["per_query"].get(q) or {}).get("average_precision"), "n": m.get("n")}
                     for q, m in (cand.get("per_query") or {}).items()}
        return {"fingerprint": cand.get("fingerprint"), "judgments": (cand.get("counts") or {}).get("judgments"),
                "candidate_ap": cand["overall"].get("average_precision"),
                "active_ap": act["overall"].get("average_precision"),
                "queries": cand["overall"].get("average_precision_queries"), "per_query": per_query}

    def judged_block(self) -> Decision | str:
        """A ``keep_active`` decision when the candidate loses on the judgments by more than the margin, else
        the note for the reason."""
        fields = self.judged_fields()
        if fields is None:
            return REASONS["judged_none"]
        if fields["delta"] < -self.policy.judged_margin:
            return self.keep(REASONS["keep_judged"].format(**fields), note=False)
        return REASONS["judged_ok"].format(**fields)


def check_promotion(catalog: Catalog, candidate: str, policy: PlannerPolicy, *, active: str | None = None
                    ) -> Decision:
    """The promotion verdict for ``candidate``, from stored evaluations (nothing is recorded)."""
    mv = catalog.get_model_version(candidate)
    if mv is None:
        raise LookupError(f"unknown model version {candidate!r}")
    check = _Check(catalog, candidate, active or active_model_key(catalog), mv.get("dataset_id"), policy)
    if candidate == check.active or mv["status"] == "active":
        return check.keep(REASONS["already_active"].format(candidate=candidate))
    return _compare(check)


def _compare(check: _Check) -> Decision:
    policy, split = check.policy, check.split
    cand, act = headline(check.cand_eval), headline(check.act_eval)
    check.evidence.update(candidate_metrics=cand or None, active_metrics=act or None, policy=policy.model_dump(),
                          judged=check.judged(), **_class_evidence(check.cand_eval))
    names = dict(candidate=check.candidate, active=check.active, split=split, dataset=check.dataset)
    if not cand or not act:
        what = "" if check.dataset else " (no dataset version)"
        return check.keep(REASONS["keep_unevaluated"].format(**names, what=what))
    metric = next((m for m in policy.primary_metrics if m in cand and m in act), None)
    if metric is None:
        return check.keep(REASONS["keep_no_metric"].format(**names, metrics=policy.primary_metrics))
    delta = cand[metric] - act[metric]
    paired = check.paired(metric)
    fields = dict(**names, metric=metric, cand=cand[metric], act=act[metric], delta=delta,
                  margin=policy.promotion_margin, paired=paired.describe() if paired else "no per-image results")
    check.evidence.update(metric=metric, delta=round(delta, 6), paired=paired.to_dict() if paired else None)
    early = _early_verdict(check, paired, fields)
    if early is not None:
        return early
    held_out = _regressions(cand, act, policy.primary_metrics, policy.guard_regression_margin)
    if held_out:
        return check.keep(REASONS["keep_regression"].format(
            candidate=check.candidate, where=f"the held-out {split} split", margin=policy.guard_regression_margin,
            regressions="; ".join(held_out)), regressions=held_out)
    judged = check.judged_block()
    if isinstance(judged, Decision):
        return judged
    guard = check.guard()
    if isinstance(guard, Decision):
        return guard
    return Decision(action="promote", reason=REASONS["promote"].format(**fields, guard=f"{guard}; {judged}"),
                    evidence=check.evidence)


def _early_verdict(check: _Check, paired: PairedDifference | None, fields: dict[str, Any]) -> Decision | None:
    """Worse, not better by the margin, too few images, or a difference the interval does not support."""
    policy = check.policy
    if fields["delta"] < 0:
        return check.keep(REASONS["keep_worse"].format(**fields))
    if fields["delta"] <= policy.promotion_margin:
        return check.keep(REASONS["keep_not_better"].format(**fields))
    if paired is None:
        return check.keep(REASONS["keep_no_paired"].format(**fields))
    if paired.n < policy.min_eval_images:
        return check.keep(REASONS["keep_too_few"].format(**fields, n=paired.n, minimum=policy.min_eval_images))
    if not paired.significant_above(policy.promotion_margin):
        return check.keep(REASONS["keep_not_significant"].format(**fields))
    return None


__all__ = ["check_promotion"]
