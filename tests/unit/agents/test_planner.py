"""Planner scenarios: a catalog state built for real in a tmp catalog -> the expected decision and reason.

The catalog states are made with the real tools (ingest, template captions, dataset versions) and the
catalog's own API (model versions, evaluations, indexes, feedback); no model is loaded. Where a test uses a
language model, only its reply is scripted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from agents.context import AgentContext
from agents.planner import Planner
from agents.policy import Decision, PlannerPolicy, decide, read_signals
from agents.promotion import check_promotion
from graph.runner import AgentRunner, RunOutcome
from tests.unit.graph.support import calls, make_context, scripted, write_tiles
from tools.captioning.rules import TemplateCaptioner
from tools.captioning.run import caption_images
from tools.datasets import create_dataset
from tools.indexes import alias_name
from tools.ingest import ingest_directory
from tools.stores.base import index_name_for_model

POLICY = PlannerPolicy(min_new_pairs_to_retrain=10, min_negative_feedback=3, guard_regression_margin=0.02)


@pytest.fixture
def deps(tmp_path: Path) -> AgentContext:
    write_tiles(tmp_path / "tiles", {"beach": 8, "forest": 8, "river": 8})
    return make_context(tmp_path / "home", [tmp_path], policy=POLICY)


def ingest(deps: AgentContext, *, captions: bool = True) -> None:
    roots = list(deps.app.config.roots)
    ingest_directory(deps.app.catalog, roots[0] / "tiles", allowed_roots=roots, labels_from_folders=True,
                     progress=False)
    if captions:
        caption_images(deps.app.catalog, TemplateCaptioner(), progress=False)


def improvement_round(ctx: AgentContext, *, dry_run: bool = False) -> list[Decision]:
    """One improvement round through the agent graph, as `skyscout improve --once` runs it; the round's
    decisions as recorded (a dry run: as proposed)."""
    runner = AgentRunner(ctx, checkpointer=InMemorySaver())
    intents = [{"intent": "improve"}]
    if dry_run:
        outcome = runner.dry_run("improvement round", intents=intents)
        return [Decision(**d) for d in outcome.results[0]["data"]["decisions"]]
    return recorded(ctx, runner.run("improvement round", thread_id="round", intents=intents))


def recorded(ctx: AgentContext, outcome: RunOutcome) -> list[Decision]:
    ids = {d["id"] for d in outcome.decisions}
    rows = [r for r in ctx.app.catalog.decisions(limit=100) if r["id"] in ids]
    return [Decision(**{k: r[k] for k in ("id", "action", "reason", "evidence", "actor", "outcome")})
            for r in sorted(rows, key=lambda r: r["id"])]


#: the held-out images the stored evaluations speak of (ids need not be in the catalog)
SCORED = [f"img-{i:03d}" for i in range(40)]


def score(deps: AgentContext, model: str, dataset: str, *, val: float, test: float | None = None,
          top1: float | None = None) -> None:
    """Store evaluations as the Training agent does (retrieval on val and test, zero-shot on val), with the
    per-image scores a paired comparison reads: every image scores the mean here."""
    for split, recall in (("val", val), ("test", test if test is not None else val)):
        deps.app.catalog.add_evaluation(model=model, dataset=dataset, split=split, kind="retrieval", metrics={
            "mean_recall": recall, "image_ids": SCORED, "per_image": [recall] * len(SCORED)})
    if top1 is not None:
        deps.app.catalog.add_evaluation(model=model, dataset=dataset, split="val", kind="zeroshot",
                                        metrics={"top1": top1, "top5": 1.0})


def add_model(deps: AgentContext, dataset: str, name: str) -> str:
    return deps.app.catalog.add_model_version(arch="skyscout-tiny", base="skyscout-tiny", dataset_id=dataset,
                                          params={}, checkpoint=str(deps.app.config.models_dir / f"{name}.pt"))


def index_for(deps: AgentContext, model: str) -> str:
    """A complete index of every accepted image for ``model``, made active (as build_index leaves it)."""
    name = index_name_for_model(model)
    deps.app.catalog.upsert_index(name, model=model, store="lancedb", dim=384, state="complete",
                              count=deps.app.catalog.count_images())
    deps.app.catalog.set_alias(alias_name("lancedb"), name)
    return name


def trained(deps: AgentContext) -> tuple[str, str]:
    """Everything captioned and trained on, the model promoted, scored and indexed: a settled system."""
    ingest(deps)
    dataset = create_dataset(deps.app.catalog, require_captions=True)["id"]
    active = add_model(deps, dataset, "a")
    deps.app.catalog.promote_model(active)
    score(deps, active, dataset, val=0.50, top1=0.60)
    index_for(deps, active)
    return active, dataset


def test_new_data_means_caption_then_retrain(deps: AgentContext) -> None:
    ingest(deps, captions=False)

    signals = read_signals(deps.app.catalog, policy=POLICY)
    decisions = decide(signals, POLICY)

    assert signals.uncaptioned == 24 and signals.new_pairs == 0
    assert [d.action for d in decisions] == ["caption", "retrain", "reindex"]
    assert decisions[0].reason.startswith("24 accepted images have no caption")
    assert "24 captioned images are not yet in the data of the last trained model (none)" in \
        decisions[1].reason
    assert "retrain from 10" in decisions[1].reason
    assert "no complete lancedb index" in decisions[2].reason


def test_worse_candidate_is_not_promoted(deps: AgentContext) -> None:
    active, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.40, top1=0.70)

    verdict = check_promotion(deps.app.catalog, candidate, POLICY)
    assert verdict.action == "keep_active"
    assert "worse than the active model" in verdict.reason
    assert "retrieval_mean_recall 0.4000 vs 0.5000" in verdict.reason

    decisions = improvement_round(deps)  # acts: records the verdict, rejects the candidate

    assert [d.action for d in decisions] == ["keep_active"]
    assert deps.app.catalog.get_alias("active_model") == active
    assert deps.app.catalog.get_model_version(candidate)["status"] == "rejected"
    logged = deps.app.catalog.decisions(limit=1)[0]
    assert logged["action"] == "keep_active" and "worse" in logged["reason"]
    assert "rejected" in logged["outcome"]


def test_better_candidate_passes_the_guardrails(deps: AgentContext) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.62, top1=0.60)

    verdict = check_promotion(deps.app.catalog, candidate, POLICY)

    assert verdict.action == "promote"
    assert "a paired difference of +0.1200 (95% interval +0.1200 to +0.1200, 40 images), above the margin 0.0" \
        in verdict.reason
    assert "no regression beyond 0.02 on the guard set" in verdict.reason
    assert [d.action for d in improvement_round(deps, dry_run=True)] == ["promote"]
    assert deps.app.catalog.decisions() == []  # a dry run records nothing


def test_guard_set_regression_blocks_promotion(deps: AgentContext) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.60, test=0.45)  # better on val, 0.05 worse on the guard split

    verdict = check_promotion(deps.app.catalog, candidate, POLICY)

    assert verdict.action == "keep_active"
    assert f"regresses the guard set {dataset}/test beyond the allowed margin 0.02" in verdict.reason
    assert verdict.evidence["regressions"] == ["retrieval_mean_recall 0.4500 vs 0.5000 (-0.0500)"]


def test_candidate_within_the_promotion_margin_is_not_promoted(deps: AgentContext) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.51)

    verdict = check_promotion(deps.app.catalog, candidate, POLICY.model_copy(update={"promotion_margin": 0.02}))

    assert verdict.action == "keep_active" and "by more than the promotion margin" in verdict.reason


def test_unevaluated_candidate_is_evaluated_before_anything_else(deps: AgentContext) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")

    decisions = decide(read_signals(deps.app.catalog, policy=POLICY), POLICY)
    assert [d.action for d in decisions] == ["evaluate"]
    assert decisions[0].evidence["candidate"] == candidate
    verdict = check_promotion(deps.app.catalog, candidate, POLICY)
    assert verdict.reason.endswith("evaluate both before a promotion")


def test_promoted_model_without_index_means_reindex(deps: AgentContext) -> None:
    old, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    deps.app.catalog.promote_model(candidate)  # promoted, but its index was never built

    decisions = decide(read_signals(deps.app.catalog, policy=POLICY), POLICY)

    assert [d.action for d in decisions] == ["reindex"]
    assert f"the active model {candidate} has no complete lancedb index" in decisions[0].reason
    alias = f"the active index alias points at {index_name_for_model(old)} (model {old})"
    assert alias in decisions[0].reason


def test_nothing_new_means_nothing(deps: AgentContext) -> None:
    trained(deps)

    decisions = improvement_round(deps)

    assert [d.action for d in decisions] == ["nothing"]
    assert decisions[0].reason.startswith("nothing to do: 0 images without captions")
    assert deps.app.catalog.decisions()[0]["action"] == "nothing"


def test_negative_feedback_records_a_retrain_decision(deps: AgentContext) -> None:
    active, _ = trained(deps)
    for image in sorted(deps.app.catalog.image_ids())[:3]:  # three marks on three results
        deps.app.catalog.add_feedback(image_id=image, relevant=False, query="beach", model=active)
    deps.policy = POLICY.model_copy(update={"require_approval": True})  # keep the test from training
    runner = AgentRunner(deps, checkpointer=InMemorySaver())

    waiting = runner.run("improvement round", thread_id="r1", intents=[{"intent": "improve"}])
    assert waiting.status == "awaiting_approval" and waiting.approval["action"] == "train_candidate"
    declined = runner.run(None, thread_id="r1", approve=False)  # the person says no: training is skipped

    decisions = recorded(deps, declined)
    actions = [d.action for d in decisions]
    assert actions[0] == "retrain" and "declined" in actions
    assert "3 search results were marked not relevant since the last training run" in decisions[0].reason
    logged = deps.app.catalog.decisions(action="retrain")
    assert len(logged) == 1 and logged[0]["evidence"]["negative_feedback"] == 3
    assert deps.app.catalog.list_jobs(kind="train") == []
    assert deps.app.catalog.decisions(action="declined")[0]["reason"].startswith("the user declined 'train_candidate'")


def test_metric_trend_across_promotions(deps: AgentContext) -> None:
    first, dataset = trained(deps)
    second = add_model(deps, dataset, "b")
    score(deps, second, dataset, val=0.58)
    deps.app.catalog.promote_model(second)

    signals = read_signals(deps.app.catalog, policy=POLICY)

    assert [h["model"] for h in signals.metric_history] == [first, second]
    assert signals.trend == pytest.approx(0.08)
    assert signals.active_metrics == {"retrieval_mean_recall": pytest.approx(0.58)}


def test_llm_chooses_only_among_allowed_actions(deps: AgentContext) -> None:
    """The LLM's reply (scripted) names 'promote', which the policy does not allow now: it is ignored."""
    ingest(deps, captions=False)
    llm = scripted(calls(("PlannerChoice", {"actions": ["caption", "promote"], "reason": "caption first"})))

    deps.llm = llm
    decisions = improvement_round(deps, dry_run=True)

    assert [d.action for d in decisions] == ["caption"]
    assert decisions[0].evidence["ignored"] == ["promote"] and decisions[0].evidence["chosen_by"] == "llm"
    assert "caption first" in decisions[0].reason


def test_llm_cannot_promote_past_the_guardrails(deps: AgentContext) -> None:
    """A worse candidate is never put to the LLM (whose script is empty: a call would fail the test)."""
    active, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.30)
    deps.llm = scripted()

    decision = Planner(deps)._apply_promotion(check_promotion(deps.app.catalog, candidate, POLICY))

    assert decision.action == "keep_active" and deps.app.catalog.get_alias("active_model") == active


def test_llm_may_be_more_careful_than_the_policy(deps: AgentContext) -> None:
    active, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.70)
    llm = scripted(calls(("PromotionChoice", {"promote": False, "reason": "wait for more feedback"})))

    deps.llm = llm
    decision = Planner(deps)._apply_promotion(check_promotion(deps.app.catalog, candidate, POLICY))

    assert decision.action == "keep_active" and decision.evidence["chosen_by"] == "llm"
    assert "wait for more feedback" in decision.reason and deps.app.catalog.get_alias("active_model") == active


def top1_eval(correct: list[int]) -> dict[str, object]:
    return {"top1": sum(correct) / len(correct), "top5": 1.0, "image_ids": [f"v{i}" for i in range(len(correct))],
            "correct": correct}


def test_a_one_image_difference_is_not_significant(deps: AgentContext) -> None:
    """Candidate and active model agree on 99 of 100 val images; the candidate gets one more right."""
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    active_correct = [1] * 70 + [0] * 30
    for model, correct in ((deps.app.catalog.get_alias("active_model"), active_correct),
                           (candidate, active_correct[:70] + [1] + [0] * 29)):
        deps.app.catalog.add_evaluation(model=str(model), dataset=dataset, split="val", kind="zeroshot",
                                        metrics=top1_eval(correct))
    policy = POLICY.model_copy(update={"primary_metrics": ["top1"]})

    verdict = check_promotion(deps.app.catalog, candidate, policy)

    assert verdict.action == "keep_active"
    assert "the difference is not significant: +0.0100 (95% interval +0.0000 to +0.0300, 100 images, McNemar " \
           "p=1.000)" in verdict.reason
    assert verdict.evidence["paired"]["n"] == 100 and verdict.evidence["paired"]["p_value"] == 1.0


def test_too_few_held_out_images_never_promote(deps: AgentContext) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    for model, correct in ((deps.app.catalog.get_alias("active_model"), [0] * 10), (candidate, [1] * 10)):
        deps.app.catalog.add_evaluation(model=str(model), dataset=dataset, split="val", kind="zeroshot",
                                        metrics=top1_eval(correct))

    verdict = check_promotion(deps.app.catalog, candidate, POLICY.model_copy(update={"primary_metrics": ["top1"]}))

    assert verdict.action == "keep_active" and "on only 10 images (policy: at least 30)" in verdict.reason


def test_policy_rejects_unknown_metrics() -> None:
    with pytest.raises(ValidationError, match="unknown metrics"):
        PlannerPolicy(primary_metrics=["accuracy"])
