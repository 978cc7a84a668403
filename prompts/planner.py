"""Texts the planner uses: the reasons its decisions give, and its prompts when a language model helps.

Reasons are ``str.format`` templates filled with the evidence of each decision; they are what a person
reads in ``skyscout decisions``, so they name the numbers and the policy threshold behind each choice.
"""

from __future__ import annotations

from typing import Final

# -- reasons of the policy's decisions ----------------------------------------------------------------

REASONS: Final[dict[str, str]] = {
    "caption": "{uncaptioned} accepted images have no caption that the {captioner} captioner can write (policy: "
    "caption from {threshold}); caption "
    "them with the {captioner} captioner so they can be trained on and explained",
    "retrain_pairs": "{new_pairs} captioned images are not yet in the data of the last trained model "
    "({reference}) (policy: retrain from {threshold})",
    "retrain_feedback": "{negative} search results were marked not relevant since the last training run "
    "(policy: retrain from {threshold})",
    "retrain_marks": "{marks} marks ({positive} relevant, {negative} not relevant) on images that may be trained "
    "on were given since the active model {active} was trained, and no model has used them yet (policy: retrain "
    "from {threshold})",
    "retrain_uses_marks": "the new dataset version turns the {n} marks ({ids}) into image-text pairs (relevant) "
    "and hard negatives (not relevant); marks on val/test images are held back to judge the candidate",
    "evaluate_candidate": "candidate {candidate} has no metrics on the held-out {split} split of its dataset; "
    "it must be evaluated before it can be promoted",
    "reindex": "{why}; build the active model's index and switch the alias when it is complete",
    "nothing": "nothing to do: {uncaptioned} images without captions (caption from {min_uncaptioned}), "
    "{new_pairs} new captioned pairs (retrain from {min_pairs}), {negative} negative feedback since the last "
    "training (retrain from {min_negative}), no candidate waiting, and the index {index} is up to date",
    # promotion (the guardrails)
    "promote": "candidate {candidate} beats the active model {active} on the held-out {split} split: "
    "{metric} {cand:.4f} vs {act:.4f}, a paired difference of {paired}, above the margin {margin}; {guard}",
    "keep_worse": "candidate {candidate} is worse than the active model {active} on the held-out {split} "
    "split: {metric} {cand:.4f} vs {act:.4f} ({delta:+.4f}; paired: {paired}); it is not promoted",
    "keep_no_paired": "candidate {candidate} looks better than the active model {active} on the held-out {split} "
    "split ({metric} {cand:.4f} vs {act:.4f}) but the two have no per-image results on the same images to "
    "compare; evaluate both again before a promotion",
    "keep_too_few": "candidate {candidate} looks better than the active model {active} on the held-out {split} "
    "split ({metric} {cand:.4f} vs {act:.4f}) but on only {n} images (policy: at least {minimum}); too few to "
    "decide, it is not promoted",
    "keep_not_significant": "candidate {candidate} looks better than the active model {active} on the held-out "
    "{split} split ({metric} {cand:.4f} vs {act:.4f}) but the difference is not significant: {paired} reaches "
    "the margin {margin}; it is not promoted",
    "keep_not_better": "candidate {candidate} does not beat the active model {active} on the held-out "
    "{split} split by more than the promotion margin: {metric} {cand:.4f} vs {act:.4f} "
    "({delta:+.4f} <= {margin}); it is not promoted",
    "keep_regression": "candidate {candidate} regresses {where} beyond the allowed margin {margin}: "
    "{regressions}; it is not promoted",
    "keep_unevaluated": "candidate {candidate} and the active model {active} do not both have metrics on "
    "{dataset}/{split}{what}; evaluate both before a promotion",
    "keep_no_metric": "candidate {candidate} and the active model {active} share none of the metrics "
    "{metrics} on {dataset}/{split}; no promotion without a comparison",
    "keep_judged": "candidate {candidate} loses on the users' held-back judgments: mean average precision "
    "{cand:.4f} vs {act:.4f} ({delta:+.4f}, {judgments} judgments over {queries} queries), more than the allowed "
    "margin {margin}; it is not promoted",
    "judged_ok": "on the users' held-back judgments mean average precision {cand:.4f} vs {act:.4f} ({delta:+.4f}, "
    "{judgments} judgments over {queries} queries; allowed drop {margin})",
    "judged_none": "no held-back judgments to compare on",
    "already_active": "model {candidate} is already the active model",
    "guard_ok": "no regression beyond {margin} on the guard set {guard}",
    "guard_empty": "the guard set {guard} is empty, so only the held-out split was compared",
    "guard_same": "the guard set is the held-out split itself",
    # steps the planner adds around a user's request
    "user_request": 'requested: "{text}"',
    "dataset_for_training": "training needs a dataset version that includes the newest captioned images",
    "evaluate_after_training": "score the new candidate against the active model on the held-out {split} "
    "split (and the guard split) before any promotion",
    "promote_after_training": "promote the candidate only if it passes the policy's guardrails",
    "index_after_training": "refresh the search index if the active model changed",
    "reindex_before_search": "{why}; a search needs a complete index of the active model",
    "index_up_to_date": "the active model's index {index} is complete and active; nothing to re-index",
    "approval_requested": "'{action}' is an expensive action and the policy requires approval before it "
    "runs ({reason})",
    "approved": "the user approved '{action}'",
    "declined": "the user declined '{action}'; it and the steps that need it are skipped",
    "llm_choice": "{reason} (the language model chose this among the actions the policy allows: {allowed})",
    "llm_none": "{reason} (the language model chose none of the actions the policy allows: {allowed})",
}

# -- prompts (LLM mode) -----------------------------------------------------------------------------

INTERPRET_SYSTEM_PROMPT: Final[str] = (
    "You are the planner of SkyScout, which searches satellite imagery by text. Turn the user's request "
    "into the ordered list of commands it asks for, and say why in one sentence. Intents:\n{intents}\n"
    "Arguments by intent: ingest {{path, manifest}}; caption {{captioner: template|tags|blip|blip2}}; "
    "train {{model, epochs, dataset}}; evaluate {{model, split, dataset}}; index {{model}}; search {{query, "
    "k, filters, negative, image}}; explain {{subject}}; improve {{rounds}}; status and unknown take none. "
    "Use only what the request says; leave an argument out rather than invent it. Use 'unknown' for "
    "anything outside these commands."
)

CHOOSE_ACTIONS_PROMPT: Final[str] = (
    "You are the planner of SkyScout. The state of the system is:\n{signals}\n\n"
    "The explicit policy allows these actions now, each with its reason:\n{options}\n\n"
    "Choose the actions to take in this improvement round (any subset, possibly none) and explain the "
    "choice in one or two sentences. You cannot choose an action that is not listed."
)

PROMOTION_PROMPT: Final[str] = (
    "You are the planner of SkyScout. A candidate model passed every guardrail for promotion:\n{reason}\n"
    "Evidence: {evidence}\n\nDecide whether to promote it now (it becomes the model that search uses, and "
    "the index is rebuilt) or keep the active model, and say why in one sentence."
)

STATUS_TEMPLATE: Final[str] = (
    "{images} images ({rejected} rejected), {uncaptioned} without captions, {new_pairs} captioned images not "
    "yet trained on; active model {active_model}{metrics}; {candidates}; index: {index}; feedback since the "
    "last training: {negative} not relevant, {positive} relevant."
)
EXPLAIN_EMPTY: Final[str] = "No decisions{about} have been recorded yet."
EXPLAIN_LINE: Final[str] = "#{id} {action} ({actor}): {reason}{outcome}"
EXPLAIN_EVIDENCE: Final[str] = "\n    evidence: {evidence}"
EXPLAIN_CONFUSION: Final[str] = (
    "The active model {model}, on {dataset}/{split} ({n} images), confuses most: {confusions}. Its weakest "
    "classes (zero-shot top-1): {weakest}."
)
EXPLAIN_NO_CONFUSION: Final[str] = (
    "The active model {model} has no stored zero-shot results yet; evaluate it first (`skyscout eval`)."
)
