"""Planner scenarios: a catalog state built for real in a tmp catalog -> the expected decision and reason.

The catalog states are made with the real tools (ingest, template captions, dataset versions) and the
catalog's own API (model versions, evaluations, indexes, feedback); no model is loaded. Where a test uses a
language model, only its reply is scripted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.deps import AgentDeps
from agents.planner import (
    PlannerPolicy,
    check_promotion,
    create_planner,
    decide,
    read_signals,
    run_improvement_round,
)
from tests.unit.graph.support import calls, make_deps, scripted, write_tiles
from tools.captioning.rules import TemplateCaptioner
from tools.captioning.run import caption_images
from tools.datasets import create_dataset
from tools.embedding import alias_name
from tools.ingest import ingest_directory
from tools.stores.base import index_name_for_model

POLICY = PlannerPolicy(min_new_pairs_to_retrain=10, min_negative_feedback=3, guard_regression_margin=0.02)


@pytest.fixture
def deps(tmp_path: Path) -> AgentDeps:
    write_tiles(tmp_path / "tiles", {"beach": 8, "forest": 8, "river": 8})
    return make_deps(tmp_path / "home", [tmp_path], policy=POLICY)


def ingest(deps: AgentDeps, *, captions: bool = True) -> None:
    root = deps.allowed_roots[0] / "tiles"
    ingest_directory(deps.catalog, root, allowed_roots=deps.allowed_roots, labels_from_folders=True,
                     progress=False)
    if captions:
        caption_images(deps.catalog, TemplateCaptioner(), progress=False)


def score(deps: AgentDeps, model: str, dataset: str, *, val: float, test: float | None = None,
          top1: float | None = None) -> None:
    """Store evaluations as the Training agent does (retrieval on val and test, zero-shot on val)."""
    for split, recall in (("val", val), ("test", test if test is not None else val)):
        deps.catalog.add_evaluation(model=model, dataset=dataset, split=split, kind="retrieval",
                                    metrics={"mean_recall": recall})
    if top1 is not None:
        deps.catalog.add_evaluation(model=model, dataset=dataset, split="val", kind="zeroshot",
                                    metrics={"top1": top1, "top5": 1.0})


def add_model(deps: AgentDeps, dataset: str, name: str) -> str:
    return deps.catalog.add_model_version(arch="skyscout-tiny", base="skyscout-tiny", dataset_id=dataset,
                                          params={}, checkpoint=str(deps.models_dir / f"{name}.pt"))


def index_for(deps: AgentDeps, model: str) -> str:
    """A complete index of every accepted image for ``model``, made active (as build_index leaves it)."""
    name = index_name_for_model(model)
    deps.catalog.upsert_index(name, model=model, store="lancedb", dim=384, state="complete",
                              count=deps.catalog.count_images())
    deps.catalog.set_alias(alias_name("lancedb"), name)
    return name


def trained(deps: AgentDeps) -> tuple[str, str]:
    """Everything captioned and trained on, the model promoted, scored and indexed: a settled system."""
    ingest(deps)
    dataset = create_dataset(deps.catalog, require_captions=True)["id"]
    active = add_model(deps, dataset, "a")
    deps.catalog.promote_model(active)
    score(deps, active, dataset, val=0.50, top1=0.60)
    index_for(deps, active)
    return active, dataset


def test_new_data_means_caption_then_retrain(deps: AgentDeps) -> None:
    ingest(deps, captions=False)

    signals = read_signals(deps.catalog, policy=POLICY)
    decisions = decide(signals, POLICY)

    assert signals.uncaptioned == 24 and signals.new_pairs == 0
    assert [d.action for d in decisions] == ["caption", "retrain", "reindex"]
    assert decisions[0].reason.startswith("24 accepted images have no caption")
    assert "24 captioned images are not yet in the data of the last trained model (none)" in \
        decisions[1].reason
    assert "retrain from 10" in decisions[1].reason
    assert "no complete lancedb index" in decisions[2].reason


def test_worse_candidate_is_not_promoted(deps: AgentDeps) -> None:
    active, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.40, top1=0.70)

    verdict = check_promotion(deps.catalog, candidate, POLICY)
    assert verdict.action == "keep_active"
    assert "worse than the active model" in verdict.reason
    assert "retrieval_mean_recall 0.4000 vs 0.5000" in verdict.reason

    decisions = run_improvement_round(deps)  # acts: records the verdict, rejects the candidate

    assert [d.action for d in decisions] == ["keep_active"]
    assert deps.catalog.get_alias("active_model") == active
    assert deps.catalog.get_model_version(candidate)["status"] == "rejected"
    logged = deps.catalog.decisions(limit=1)[0]
    assert logged["action"] == "keep_active" and "worse" in logged["reason"]
    assert "rejected" in logged["outcome"]


def test_better_candidate_passes_the_guardrails(deps: AgentDeps) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.62, top1=0.60)

    verdict = check_promotion(deps.catalog, candidate, POLICY)

    assert verdict.action == "promote"
    assert "+0.1200 > margin 0.0" in verdict.reason
    assert "no regression beyond 0.02 on the guard set" in verdict.reason
    assert [d.action for d in run_improvement_round(deps, dry_run=True)] == ["promote"]
    assert deps.catalog.decisions() == []  # a dry run records nothing


def test_guard_set_regression_blocks_promotion(deps: AgentDeps) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.60, test=0.45)  # better on val, 0.05 worse on the guard split

    verdict = check_promotion(deps.catalog, candidate, POLICY)

    assert verdict.action == "keep_active"
    assert f"regresses the guard set {dataset}/test beyond the allowed margin 0.02" in verdict.reason
    assert verdict.evidence["regressions"] == ["retrieval_mean_recall 0.4500 vs 0.5000 (-0.0500)"]


def test_candidate_within_the_promotion_margin_is_not_promoted(deps: AgentDeps) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.51)

    verdict = check_promotion(deps.catalog, candidate, POLICY.model_copy(update={"promotion_margin": 0.02}))

    assert verdict.action == "keep_active" and "by more than the promotion margin" in verdict.reason


def test_unevaluated_candidate_is_evaluated_before_anything_else(deps: AgentDeps) -> None:
    _, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")

    decisions = decide(read_signals(deps.catalog, policy=POLICY), POLICY)
    assert [d.action for d in decisions] == ["evaluate"]
    assert decisions[0].evidence["candidate"] == candidate
    verdict = check_promotion(deps.catalog, candidate, POLICY)
    assert verdict.reason.endswith("evaluate both before a promotion")


def test_promoted_model_without_index_means_reindex(deps: AgentDeps) -> None:
    old, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    deps.catalog.promote_model(candidate)  # promoted, but its index was never built

    decisions = decide(read_signals(deps.catalog, policy=POLICY), POLICY)

    assert [d.action for d in decisions] == ["reindex"]
    assert f"the active model {candidate} has no complete lancedb index" in decisions[0].reason
    alias = f"the active index alias points at {index_name_for_model(old)} (model {old})"
    assert alias in decisions[0].reason


def test_nothing_new_means_nothing(deps: AgentDeps) -> None:
    trained(deps)

    decisions = run_improvement_round(deps)

    assert [d.action for d in decisions] == ["nothing"]
    assert decisions[0].reason.startswith("nothing to do: 0 images without captions")
    assert deps.catalog.decisions()[0]["action"] == "nothing"


def test_negative_feedback_records_a_retrain_decision(deps: AgentDeps) -> None:
    active, _ = trained(deps)
    image = sorted(deps.catalog.image_ids())[0]
    for _ in range(3):
        deps.catalog.add_feedback(image_id=image, relevant=False, query="beach", model=active)
    deps.policy = POLICY.model_copy(update={"require_approval": True})  # keep the test from training

    decisions = run_improvement_round(deps)  # nobody approves: training is skipped, the decision stays

    actions = [d.action for d in decisions]
    assert actions[0] == "retrain" and "declined" in actions
    assert "3 search results were marked not relevant since the last training run" in decisions[0].reason
    logged = deps.catalog.decisions(action="retrain")
    assert len(logged) == 1 and logged[0]["evidence"]["negative_feedback"] == 3
    assert deps.catalog.list_jobs(kind="train") == []
    declined = deps.catalog.decisions(action="declined")[0]
    assert declined["reason"].startswith("'train_candidate' needs approval")


def test_metric_trend_across_promotions(deps: AgentDeps) -> None:
    first, dataset = trained(deps)
    second = add_model(deps, dataset, "b")
    score(deps, second, dataset, val=0.58)
    deps.catalog.promote_model(second)

    signals = read_signals(deps.catalog, policy=POLICY)

    assert [h["model"] for h in signals.metric_history] == [first, second]
    assert signals.trend == pytest.approx(0.08)
    assert signals.active_metrics == {"retrieval_mean_recall": pytest.approx(0.58)}


def test_llm_chooses_only_among_allowed_actions(deps: AgentDeps) -> None:
    """The LLM's reply (scripted) names 'promote', which the policy does not allow now: it is ignored."""
    ingest(deps, captions=False)
    llm = scripted(calls(("PlannerChoice", {"actions": ["caption", "promote"], "reason": "caption first"})))

    decisions = run_improvement_round(deps, llm=llm, dry_run=True)

    assert [d.action for d in decisions] == ["caption"]
    assert decisions[0].evidence["ignored"] == ["promote"] and decisions[0].evidence["chosen_by"] == "llm"
    assert "caption first" in decisions[0].reason


def test_llm_cannot_promote_past_the_guardrails(deps: AgentDeps) -> None:
    """A worse candidate is never put to the LLM (whose script is empty: a call would fail the test)."""
    active, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.30)
    planner = create_planner(deps=deps, llm=scripted())

    decision = planner._apply_promotion(check_promotion(deps.catalog, candidate, POLICY))

    assert decision.action == "keep_active" and deps.catalog.get_alias("active_model") == active


def test_llm_may_be_more_careful_than_the_policy(deps: AgentDeps) -> None:
    active, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.70)
    llm = scripted(calls(("PromotionChoice", {"promote": False, "reason": "wait for more feedback"})))

    planner = create_planner(deps=deps, llm=llm)
    decision = planner._apply_promotion(check_promotion(deps.catalog, candidate, POLICY))

    assert decision.action == "keep_active" and decision.evidence["chosen_by"] == "llm"
    assert "wait for more feedback" in decision.reason and deps.catalog.get_alias("active_model") == active


def test_policy_rejects_unknown_metrics() -> None:
    with pytest.raises(ValidationError, match="unknown metrics"):
        PlannerPolicy(primary_metrics=["accuracy"])
