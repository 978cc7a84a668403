"""The collection commands of the Data API stand-in (tests only): insert, find, replace, delete and count,
with the Data API's limits and response shapes. :func:`collection_command` runs one of them.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.support.astra_documents import (
    MAX_COUNT,
    MAX_DELETE_MANY,
    MAX_INSERT_MANY,
    MAX_VECTOR_SEARCH_LIMIT,
    PAGE_SIZE,
    SPECIAL_FIELDS,
    APIError,
    Collection,
    already_exists,
    decode_vector,
    json_equal,
    matches,
    project,
    similarities,
    sort_select,
)


def collection_command(coll: Collection, command: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one collection command (``insertOne``, ``find``, ...) on ``coll``; unknown ones are refused."""
    handler = _COMMANDS.get(command)
    if handler is None:
        raise APIError(
            "COMMAND_UNKNOWN",
            f"Provided command unknown: '{command}' (not implemented by the Data API stand-in)",
        )
    return handler(coll, args)


def _prepare_doc(coll: Collection, raw: Any) -> tuple[dict[str, Any], np.ndarray | None]:
    if not isinstance(raw, dict):
        raise APIError("SHRED_BAD_DOCUMENT_TYPE", "Bad document type to shred: document must be a JSON object")
    doc = dict(raw)
    doc.setdefault("_id", str(uuid.uuid4()))
    for key in doc:
        if key.startswith("$") and key not in SPECIAL_FIELDS:
            raise APIError("SHRED_DOC_KEY_NAME_VIOLATION", f"Document field name invalid: '{key}'")
    if "$vectorize" in doc:
        raise APIError("VECTORIZE_FEATURE_NOT_AVAILABLE", "Vectorize is not available in the stand-in")
    vector = None
    if "$vector" in doc:
        raw_vector = doc.pop("$vector")
        if raw_vector is not None:
            if coll.dimension is None:
                raise APIError("VECTOR_SEARCH_NOT_SUPPORTED", "Vector search is not enabled for the collection")
            vector = decode_vector(raw_vector)
            if vector.shape[0] != coll.dimension:
                raise APIError(
                    "VECTOR_SIZE_MISMATCH",
                    "Length of vector parameter different from declared '$vector' dimension: "
                    f"{vector.shape[0]} vs {coll.dimension}",
                )
    return doc, vector


def _store(coll: Collection, doc: dict[str, Any], vector: np.ndarray | None) -> None:
    coll.docs[doc["_id"]] = doc
    if vector is None:
        coll.vectors.pop(doc["_id"], None)
    else:
        coll.vectors[doc["_id"]] = vector


def _insert_one(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    doc, vector = _prepare_doc(coll, args.get("document"))
    if doc["_id"] in coll.docs:
        raise APIError(
            "DOCUMENT_ALREADY_EXISTS",
            already_exists(doc["_id"]),
        )
    _store(coll, doc, vector)
    return {"status": {"insertedIds": [doc["_id"]]}}


def _insert_many(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    documents = args.get("documents")
    options = args.get("options") or {}
    if not isinstance(documents, list) or not documents:
        raise APIError(
            "COMMAND_FIELD_INVALID",
            "Request invalid, the field postCommand.command.documents not valid: must not be empty.",
        )
    if len(documents) > MAX_INSERT_MANY:
        raise APIError(
            "COMMAND_FIELD_INVALID",
            "Request invalid, the field postCommand.command.documents not valid: amount of documents to "
            f"insert is over the max limit ({len(documents)} vs {MAX_INSERT_MANY}).",
        )
    ordered = bool(options.get("ordered", False))
    responses: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    inserted: list[Any] = []
    failed = False
    for raw in documents:
        doc_id = raw.get("_id") if isinstance(raw, dict) else None
        if failed and ordered:
            responses.append({"_id": doc_id, "status": "SKIPPED"})
            continue
        try:
            doc, vector = _prepare_doc(coll, raw)
            doc_id = doc["_id"]
            if doc_id in coll.docs:
                raise APIError(
                    "DOCUMENT_ALREADY_EXISTS",
                    already_exists(doc_id),
                    scope="DOCUMENT",
                )
            _store(coll, doc, vector)
            inserted.append(doc_id)
            responses.append({"_id": doc_id, "status": "OK"})
        except APIError as err:
            failed = True
            desc = {k: v for k, v in err.as_dict().items() if k != "id"}
            if desc not in errors:
                errors.append(desc)
            responses.append({"_id": doc_id, "status": "ERROR", "errorsIdx": errors.index(desc)})
    status = {"documentResponses": responses} if options.get("returnDocumentResponses") else {"insertedIds": inserted}
    out: dict[str, Any] = {"status": status}
    if errors:
        out["errors"] = [{**e, "id": str(uuid.uuid4())} for e in errors]
    return out


def _select(
    coll: Collection, args: dict[str, Any], *, max_limit: int | None = None
) -> tuple[list[dict[str, Any]], list[float] | None, np.ndarray | None]:
    """Matching documents in result order, their similarities (vector sort) and the sort vector."""
    flt = coll.check_filter(args.get("filter"))
    sort = args.get("sort") or {}
    options = args.get("options") or {}
    docs = [d for d in coll.docs.values() if matches(d, flt)]
    if "$vectorize" in sort or "$hybrid" in sort or "$lexical" in sort:
        raise APIError("FEATURE_NOT_AVAILABLE_IN_STANDIN", "Only $vector sorts are implemented by the stand-in")
    if "$vector" in sort:
        return _vector_select(coll, docs, sort, options)
    return sort_select(docs, sort, options, max_limit), None, None


def _vector_select(
    coll: Collection, docs: list[dict[str, Any]], sort: dict[str, Any], options: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[float], np.ndarray]:
    """A ``$vector`` sort: the nearest documents with their similarities, as the Data API scores them."""
    if len(sort) != 1:
        raise APIError("INVALID_SORT_CLAUSE", "Vector sort cannot be combined with other sort fields")
    if coll.dimension is None:
        raise APIError("VECTOR_SEARCH_NOT_SUPPORTED", "Vector search is not enabled for the collection")
    limit = options.get("limit")
    if limit is not None and limit > MAX_VECTOR_SEARCH_LIMIT:
        raise APIError(
            "COMMAND_FIELD_INVALID",
            "Request invalid, the field postCommand.command.options.limit not valid: limit options "
            f"should not be greater than {MAX_VECTOR_SEARCH_LIMIT} for vector search.",
        )
    if options.get("skip"):
        raise APIError("COMMAND_FIELD_INVALID", "skip options should not be used with vector search")
    query = decode_vector(sort["$vector"])
    if query.shape[0] != coll.dimension:
        raise APIError(
            "VECTOR_SIZE_MISMATCH",
            "Length of vector parameter different from declared '$vector' dimension: "
            f"{query.shape[0]} vs {coll.dimension}",
        )
    docs = [d for d in docs if d["_id"] in coll.vectors]
    if not docs:
        return [], [], query
    mat = np.stack([coll.vectors[d["_id"]] for d in docs]).astype(np.float64)
    sims = similarities(mat, query.astype(np.float64), coll.metric)
    order = np.argsort(-sims, kind="stable")[: min(limit or MAX_VECTOR_SEARCH_LIMIT, MAX_VECTOR_SEARCH_LIMIT)]
    return [docs[i] for i in order], [float(sims[i]) for i in order], query


def _render(coll: Collection, doc: dict[str, Any], projection: Any, similarity: float | None) -> dict[str, Any]:
    out = project(coll.record(doc), projection if isinstance(projection, dict) else None)
    if similarity is not None:
        out["$similarity"] = similarity
    return out


def _find(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    options = args.get("options") or {}
    page_state = options.get("pageState")
    if page_state and "$vector" in (args.get("sort") or {}):
        raise APIError("COMMAND_FIELD_INVALID", "pageState is not supported with vector search")
    docs, sims, query = _select(coll, args)
    status: dict[str, Any] = {}
    if options.get("includeSortVector"):
        status["sortVector"] = query.astype(float).tolist() if query is not None else None
    if sims is not None:
        include = bool(options.get("includeSimilarity"))
        rendered = [
            _render(coll, d, args.get("projection"), s if include else None) for d, s in zip(docs, sims, strict=True)
        ]
        out: dict[str, Any] = {"data": {"documents": rendered, "nextPageState": None}}
    else:
        start = 0
        if page_state:
            try:
                start = int(base64.b64decode(page_state).decode())
            except ValueError as exc:
                raise APIError("INVALID_PAGE_STATE", "Invalid pageState") from exc
        page = docs[start : start + PAGE_SIZE]
        nxt = start + PAGE_SIZE
        state = base64.b64encode(str(nxt).encode()).decode() if nxt < len(docs) else None
        rendered = [_render(coll, d, args.get("projection"), None) for d in page]
        out = {"data": {"documents": rendered, "nextPageState": state}}
    if status:
        out["status"] = status
    return out


def _find_one(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    options = args.get("options") or {}
    docs, sims, query = _select(coll, {**args, "options": {**options, "limit": 1}})
    doc = None
    if docs:
        sim = sims[0] if sims is not None and options.get("includeSimilarity") else None
        doc = _render(coll, docs[0], args.get("projection"), sim)
    out: dict[str, Any] = {"data": {"document": doc}}
    if options.get("includeSortVector") and query is not None:
        out["status"] = {"sortVector": query.astype(float).tolist()}
    return out


def _find_one_and_replace(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    options = args.get("options") or {}
    replacement = args.get("replacement")
    if not isinstance(replacement, dict):
        raise APIError("COMMAND_FIELD_INVALID", "'replacement' must be a JSON object")
    docs, _, _ = _select(coll, {"filter": args.get("filter"), "sort": args.get("sort"), "options": {"limit": 1}})
    return_after = options.get("returnDocument", "before") == "after"
    projection = args.get("projection")
    if docs:
        before = docs[0]
        if "_id" in replacement and not json_equal(replacement["_id"], before["_id"]):
            raise APIError(
                "DOCUMENT_REPLACE_DIFFERENT_DOCID",
                "The replace document and document resolved using filter have different _ids",
            )
        old = _render(coll, before, projection, None)
        doc, vector = _prepare_doc(coll, {**replacement, "_id": before["_id"]})
        _store(coll, doc, vector)
        shown = _render(coll, doc, projection, None) if return_after else old
        return {"data": {"document": shown}, "status": {"matchedCount": 1, "modifiedCount": 1}}
    if not options.get("upsert"):
        return {"data": {"document": None}, "status": {"matchedCount": 0, "modifiedCount": 0}}
    flt = args.get("filter") or {}
    new_id = replacement.get("_id", flt.get("_id") if not isinstance(flt.get("_id"), dict) else None)
    doc, vector = _prepare_doc(coll, {**replacement, **({"_id": new_id} if new_id is not None else {})})
    _store(coll, doc, vector)
    upserted = _render(coll, doc, projection, None) if return_after else None
    return {
        "data": {"document": upserted},
        "status": {"matchedCount": 0, "modifiedCount": 0, "upsertedId": doc["_id"]},
    }


def _delete_one(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    docs, _, _ = _select(coll, {"filter": args.get("filter"), "sort": args.get("sort"), "options": {"limit": 1}})
    for d in docs:
        coll.docs.pop(d["_id"], None)
        coll.vectors.pop(d["_id"], None)
    return {"status": {"deletedCount": len(docs)}}


def _delete_many(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    flt = coll.check_filter(args.get("filter"))
    if not flt:
        coll.docs.clear()
        coll.vectors.clear()
        return {"status": {"deletedCount": -1}}
    matching = [d["_id"] for d in coll.docs.values() if matches(d, flt)]
    for doc_id in matching[:MAX_DELETE_MANY]:
        coll.docs.pop(doc_id, None)
        coll.vectors.pop(doc_id, None)
    status: dict[str, Any] = {"deletedCount": min(len(matching), MAX_DELETE_MANY)}
    if len(matching) > MAX_DELETE_MANY:
        status["moreData"] = True
    return {"status": status}


def _count(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    flt = coll.check_filter(args.get("filter"))
    n = sum(1 for d in coll.docs.values() if matches(d, flt))
    if n > MAX_COUNT:
        return {"status": {"count": MAX_COUNT, "moreData": True}}
    return {"status": {"count": n}}


def _estimated_count(coll: Collection, args: dict[str, Any]) -> dict[str, Any]:
    return {"status": {"count": len(coll.docs)}}


_COMMANDS: dict[str, Callable[[Collection, dict[str, Any]], dict[str, Any]]] = {
    "insertOne": _insert_one,
    "insertMany": _insert_many,
    "find": _find,
    "findOne": _find_one,
    "findOneAndReplace": _find_one_and_replace,
    "deleteOne": _delete_one,
    "deleteMany": _delete_many,
    "countDocuments": _count,
    "estimatedDocumentCount": _estimated_count,
}
