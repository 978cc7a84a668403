"""The planner and users' marks: the feedback trigger (unused marks on train images since the active model was
trained), held-back marks, the judged guardrail, and one whole round through the graph that trains on marks."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.context import AgentContext
from agents.policy import decide, read_signals
from agents.promotion import check_promotion
from tests.unit.agents.test_planner import POLICY, add_model, improvement_round, score, trained
from tests.unit.graph.support import make_context, write_tiles
from tools.datasets import placed_splits
from tools.modelops import training_items

MARKS_POLICY = POLICY.model_copy(update={"min_negative_feedback": 50, "min_feedback_marks": 4})


@pytest.fixture
def deps(tmp_path: Path) -> AgentContext:
    write_tiles(tmp_path / "tiles", {"beach": 8, "forest": 8, "river": 8})
    return make_context(tmp_path / "home", [tmp_path], policy=MARKS_POLICY)


def split_of(deps: AgentContext, split: str) -> list[str]:
    placed = placed_splits(deps.app.catalog)
    return sorted(i for i, s in placed.items() if s == split)


def judged(deps: AgentContext, model: str, dataset: str, ap: float, fingerprint: str = "f1") -> None:
    """A stored judged evaluation, as app.evaluation.judged_pair records it."""
    deps.app.catalog.add_evaluation(model=model, dataset=dataset, split="judged", kind="judged", metrics={
        "fingerprint": fingerprint, "counts": {"judgments": 12},
        "overall": {"average_precision": ap, "average_precision_queries": 2},
        "per_query": {"beach": {"average_precision": ap, "n": 6}, "river": {"average_precision": ap, "n": 6}}})


def test_marks_on_train_images_trigger_a_retrain_that_names_them(deps: AgentContext) -> None:
    active, _ = trained(deps)
    train, held = split_of(deps, "train"), split_of(deps, "val") + split_of(deps, "test")
    c = deps.app.catalog.create_concept("beach")
    ids = deps.app.catalog.label_concept(c["id"], [(i, n % 2 == 0) for n, i in enumerate(train[:3])])
    deps.app.catalog.label_concept(c["id"], [(i, True) for i in held])  # held back: they judge, never train
    signals = read_signals(deps.app.catalog, policy=MARKS_POLICY)
    assert signals.feedback_marks == ids and signals.held_back_marks == len(held)
    assert [d.action for d in decide(signals, MARKS_POLICY)] == ["nothing"]  # 3 marks, the policy wants 4

    more = deps.app.catalog.add_feedback(image_id=train[5], relevant=False, query="river", query_id="q-1")
    signals = read_signals(deps.app.catalog, policy=MARKS_POLICY)
    retrain = decide(signals, MARKS_POLICY)[0]
    assert retrain.action == "retrain" and retrain.evidence["feedback_marks"] == [*ids, more]
    assert f"4 marks (2 relevant, 2 not relevant) on images that may be trained on were given since the active " \
           f"model {active} was trained" in retrain.reason
    assert "#" + str(ids[0]) in retrain.reason and "held back to judge the candidate" in retrain.reason
    deps.app.catalog.set_feedback_used([*ids, more], "mv-used")  # a candidate was trained on them
    assert read_signals(deps.app.catalog, policy=MARKS_POLICY).feedback_marks == []


def test_a_candidate_that_loses_on_the_judgments_is_refused(deps: AgentContext) -> None:
    active, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.62, top1=0.60)  # better on the held-out split
    judged(deps, active, dataset, 0.80)
    judged(deps, candidate, dataset, 0.70)

    verdict = check_promotion(deps.app.catalog, candidate, MARKS_POLICY)

    assert verdict.action == "keep_active"
    assert "loses on the users' held-back judgments: mean average precision 0.7000 vs 0.8000 (-0.1000, 12 " \
           "judgments over 2 queries), more than the allowed margin 0.02" in verdict.reason
    assert verdict.evidence["judged"]["per_query"]["beach"] == {"candidate": 0.7, "active": 0.8, "n": 6}


def test_judgments_are_compared_only_on_the_same_marks(deps: AgentContext) -> None:
    active, dataset = trained(deps)
    candidate = add_model(deps, dataset, "b")
    score(deps, candidate, dataset, val=0.62, top1=0.60)
    judged(deps, active, dataset, 0.90, fingerprint="older-marks")
    judged(deps, candidate, dataset, 0.70)
    verdict = check_promotion(deps.app.catalog, candidate, MARKS_POLICY)
    assert verdict.action == "promote" and "no held-back judgments to compare on" in verdict.reason
    judged(deps, active, dataset, 0.69)
    verdict = check_promotion(deps.app.catalog, candidate, MARKS_POLICY)
    assert verdict.action == "promote" and "mean average precision 0.7000 vs 0.6900 (+0.0100" in verdict.reason


@pytest.mark.slow
def test_a_round_trains_on_the_marks_and_judges_on_the_held_back_ones(deps: AgentContext) -> None:
    """The graph path of `skyscout improve --once`: marks -> retrain decision naming them -> a new dataset
    version with their pairs and hard negatives -> a candidate trained on them (used_in) -> judged on the
    held-back marks beside the active model -> the guardrails' verdict with the judged comparison."""
    from app.indexing import build_index
    from app.training import train

    active_before, dataset = trained(deps)
    deps.app.catalog.promote_model(train(deps.app, model="skyscout-tiny", dataset=dataset,
                                         overrides=dict(deps.training))["model_version"])
    active = deps.app.catalog.get_alias("active_model")
    build_index(deps.app, num_workers=0)
    beach = {i for i, labels in deps.app.catalog.labels_for(list(deps.app.catalog.image_ids())).items()
             if labels == ["beach"]}
    train_ids, held = split_of(deps, "train"), split_of(deps, "val") + split_of(deps, "test")
    c = deps.app.catalog.create_concept("beach")
    deps.app.catalog.label_concept(c["id"], [(i, i in beach) for i in train_ids[:8] + held])

    decisions = improvement_round(deps)

    actions = [d.action for d in decisions]
    assert actions[0] == "retrain" and actions[-1] in ("promote", "keep_active"), actions
    assert "the new dataset version turns the 8 marks" in decisions[0].reason
    new_ds = deps.app.catalog.latest_dataset()
    assert new_ds is not None and new_ds["id"] != dataset and len(new_ds["params"]["feedback"]["marks"]) == 8
    candidate = next(v for v in deps.app.catalog.list_model_versions() if v["dataset_id"] == new_ds["id"])
    assert candidate["parent"] == active and candidate["id"] != active_before
    used = {r["image_id"]: r["used_in"] for r in deps.app.catalog.feedback()}
    assert {used[i] for i in train_ids[:8]} == {candidate["id"]} and {used[i] for i in held} == {None}
    items = training_items(deps.app.catalog, new_ds["id"])
    assert sum(it.captions == ["beach"] for it in items) == len(set(train_ids[:8]) & beach)
    verdict = decisions[-1]
    assert verdict.evidence["judged"] is not None and verdict.evidence["judged"]["judgments"] == len(held)
    assert "held-back judgments" in verdict.reason
