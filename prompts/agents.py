"""Texts the worker agents use: system prompts, tool descriptions, result summaries and the final answer.

Summaries are ``str.format`` templates filled from a tool's result data; offline (no LLM) they are the
whole answer, so every fact a user needs (counts, ids, metrics, reasons) must appear in them.
"""

from __future__ import annotations

from typing import Final

# -- system prompts (LLM mode) ----------------------------------------------------------------------

_COMMON = (
    "You are one agent of SkyScout, a system that searches satellite imagery by text. Use your tools to "
    "do the task you are given; call a tool rather than guessing. Arguments you are given under "
    "'suggested arguments' come from the user's request: use them unless a tool error tells you "
    "otherwise. A tool answer that starts with 'error:' means the call failed; fix the arguments and try "
    "again once, or stop and say what went wrong. When the task is done, reply with one or two plain "
    "sentences saying what you did, with the ids and numbers the tools gave you."
)

AGENT_SYSTEM_PROMPTS: Final[dict[str, str]] = {
    "data": _COMMON + " You are the Data agent: you ingest image folders and manifests into the catalog, "
    "report rejected files with their reasons, and create dataset versions (train/val/test splits).",
    "caption": _COMMON + " You are the Caption agent: you caption the catalogued images that lack a caption, "
    "with the captioner the user chose (template, tags, blip or blip2), and report how many you captioned.",
    "training": _COMMON + " You are the Training agent: you fine-tune a candidate image-text model on a "
    "dataset version, evaluate models on held-out splits, and report the candidate's metrics against the "
    "active model. You never promote a model: the planner decides that.",
    "embedding": _COMMON + " You are the Embedding agent: you build or refresh the vector index of a model "
    "version. An index becomes active only once it is complete; never drop the active index.",
    "query": _COMMON + " You are the Query agent: you answer searches over the active index (text, an "
    "example image, negative terms, metadata filters, an area or a scene), explain why the hits match, and "
    "detect where something is in the ingested scenes (GeoJSON with coordinates).",
}

AGENT_TASK_TEMPLATE: Final[str] = (
    "Task: {text}\n"
    "Action the planner expects: {action}\n"
    "Suggested arguments (JSON): {args}\n"
    "Results of earlier steps (JSON): {context}"
)

# -- tool descriptions (what the LLM reads to choose a tool) -----------------------------------------

TOOL_DESCRIPTIONS: Final[dict[str, str]] = {
    "ingest_images": "Register the images of a folder (recursively) or of a manifest (.jsonl/.csv with "
    "path, label, captions) in the catalog. Returns counts of added, duplicate, unchanged and rejected "
    "files, with the first rejection reasons.",
    "report_rejects": "List files that were rejected at ingestion, with the reason for each.",
    "create_dataset_version": "Make (or find, when identical) a dataset version: a deterministic, "
    "stratified train/val/test split of the accepted images. Returns its id and split sizes.",
    "caption_images": "Caption the accepted images that lack a caption, with the named captioner "
    "(template, tags, blip, blip2). Returns how many images were captioned.",
    "train_candidate": "Fine-tune a candidate model from a base model (default: the active one) on a "
    "dataset version's train split. Returns the new candidate's model version id and training summary.",
    "evaluate_model": "Evaluate a model (a version id, 'active', or a preset) on a dataset version's "
    "held-out split and the guard split, and compare it with the active model. Stores the metrics.",
    "build_index": "Embed every accepted image with a model (default: the active one) into a new vector "
    "index; the active-index alias moves to it only when it is complete and the model is the active one.",
    "index_status": "List the vector indexes, their state and size, and which one is active.",
    "drop_index": "Delete an index that is not the active one (refused for the active index, or while "
    "the active index is incomplete).",
    "search_images": "Search the active index by text and/or an example image (a path or an image id), "
    'with optional negative terms and metadata filters such as {"label": "beach"}. Returns ranked hits.',
    "explain_hit": "Explain why an image matches a text query: its similarity, its label, and its caption "
    "closest to the query.",
    "detect": "Find where something is in the ingested scenes: score every chip of a scene, a box "
    "(W, S, E, N degrees) or all scenes for a text; keep chips whose probability against background "
    "land covers is at least the threshold (default 0.5) or the top k; optionally merge touching chips "
    "into polygons. Writes the detections as GeoJSON (EPSG:4326) and returns the file and the best chips.",
    "record_feedback": "Record whether a search hit was relevant (for the next evaluation and training).",
    "export_results": "Write search results (image ids with scores) to a GeoJSON or JSON file in SkyScout's "
    "exports folder, with each hit's footprint when it is georeferenced.",
}

# -- result summaries -------------------------------------------------------------------------------

SUMMARIES: Final[dict[str, str]] = {
    "ingest_images": "Ingested {source}: {scanned} files scanned, {added} added, {duplicates} duplicates, "
    "{unchanged} unchanged, {rejected} rejected{reject_note} (job {job_id}).",
    "report_rejects": "{count} rejected files{examples}.",
    "create_dataset_version": "Dataset version {dataset_id} ({state}): {train} train, {val} val, "
    "{test} test images.",
    "caption_images": "Captioned {captioned} of {images} images with the {captioner} captioner "
    "({captions_added} captions added, {failed} failed; job {job_id}).",
    "train_candidate": "Trained candidate {model_version} from {base} on {dataset_id}: {steps} steps, "
    "final loss {final_loss:.4f}, {train_images} training images{resumed} (job {job_id}).",
    "evaluate_model": "Evaluated {model} on {dataset_id}/{split}: {metrics}{comparison}{guard}.",
    "build_index": "Index {index} for model {model}: {count} vectors ({embedded} embedded now, "
    "{skipped_existing} already there, {failed} failed), {state}{note} (job {job_id}).",
    "index_status": "Active index: {active}. Indexes: {indexes}.",
    "drop_index": "Dropped index {index}.",
    "search_images": "Top {n} for {described} in {index}:{hits}",
    "explain_hit": "Image {image_id} scores {score:.3f} for '{query}'{label}{caption}.",
    "detect": "Detected {n} chip(s) of '{query}' ({kept}) among {scored} scored in {where}{regions}; "
    "GeoJSON written to {out}.{best}",
    "record_feedback": "Recorded that {image_id} is {verdict} for '{query}' (feedback {feedback_id}).",
    "export_results": "Exported {count} results ({with_geometry} with a footprint) to {path}.",
}

#: one line per search hit; ``why`` says what the hit is known to be (label, closest caption)
HIT_LINE: Final[str] = "\n  {rank}. {name}  score {score:.3f}{why}"
NO_HITS: Final[str] = " no matching images."
#: one line per detection
DETECT_LINE: Final[str] = "\n  {rank}. scene {scene} window {window}  score {score:.3f}  p {probability:.2f}"

# -- the final answer -------------------------------------------------------------------------------

ANSWER_HEADER: Final[str] = "Request: {request}"
ANSWER_STEP: Final[str] = "{n}. [{agent}/{action}] {status}: {summary}"
ANSWER_DECISIONS_HEADER: Final[str] = "Decisions:"
ANSWER_DECISION: Final[str] = "  #{id} {action} ({actor}): {reason}{outcome}"
ANSWER_AWAITING: Final[str] = (
    "Waiting for approval before '{action}': {reason}\n"
    "Approve with `skyscout ask --thread {thread_id} --approve`, or decline with "
    "`skyscout ask --thread {thread_id} --reject`."
)
ANSWER_NOTHING: Final[str] = "Nothing to do."

# -- what a caller may ask for, and requests that start nothing -----------------------------------------

REFUSED_FOR_READ: Final[str] = (
    "'{action}' writes or starts work, and this caller's token may only read (search, explain, status, "
    "feedback); nothing was started. Ask with an operate token."
)
REFUSED_DESTRUCTIVE: Final[str] = (
    "SkyScout has no action that deletes or drops anything ({words}), and it does not take instructions to "
    "ignore its instructions; nothing was started. Say what to find, ingest, caption, train or index."
)
REFUSED_UNSURE: Final[str] = (
    "I am not sure enough what to do ({why}), so nothing was started. Say it again plainly, one command "
    "at a time, e.g. 'caption the images' or 'find beaches'."
)
REFUSED_LIMIT: Final[str] = (
    "{what} is beyond this server's policy ({limit}); nothing was started. Ask for less, or change the "
    "policy (SKYSCOUT_POLICY / skyscout policy)."
)
