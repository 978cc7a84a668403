"""The metadata filter language shared by every store, and its translations (LanceDB SQL, Astra Data API).

A filter is a dict in the Data API / MongoDB style, restricted to what both backends do the same way::

    {"label": "beach"}                                   # equality (on a list field: "contains")
    {"label": {"$in": ["beach", "harbor"]}}              # $eq $ne $in $nin $gt $gte $lt $lte
    {"label": "beach", "source": "ucm"}                  # several keys: all must hold
    {"$or": [{"label": "beach"}, {"tags": "sand"}]}      # $and / $or of sub-filters
    bbox_filter(2.1, 41.3, 2.3, 41.5)                    # tiles whose bounds intersect a box

Semantics (identical in every backend, and executable in Python by :func:`matches`):

- a missing key never equals anything and is never in a range; ``$ne`` / ``$nin`` match it;
- values compare within their JSON type only: ``"5"`` is not ``5``, ``True`` is not ``1``; ints and floats
  compare as numbers;
- range operators take a number and only match numeric values;
- equality with a list-valued field means "the list contains the value"; ``$in`` means "shares a value";
- list literals are only allowed as the operand of ``$in`` / ``$nin``.

:func:`parse_filter` validates a filter into a small tree once; :func:`to_lance_sql` and
:func:`to_astra_filter` render that tree, escaping every literal and quoting every column name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tools.stores.base import METADATA_KEY_RE

Scalar = str | int | float | bool
Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
#: How a LanceDB column stores a metadata key: what the SQL translation needs to know.
FieldType = Literal["str", "int", "float", "bool", "list"]

_OPS: dict[str, Op] = {
    "$eq": "eq", "$ne": "ne", "$gt": "gt", "$gte": "gte",
    "$lt": "lt", "$lte": "lte", "$in": "in", "$nin": "nin",
}  # fmt: skip
_RANGE_OPS = frozenset({"gt", "gte", "lt", "lte"})
#: The Data API accepts at most this many values in one ``$in`` / ``$nin``; longer lists are split.
ASTRA_MAX_IN_VALUES = 100


class FilterError(ValueError):
    """A filter that is not valid in the shared filter language (the message says why)."""


@dataclass(frozen=True)
class Cmp:
    """``field <op> value``; ``value`` is a tuple for ``in`` / ``nin``."""

    field: str
    op: Op
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class And:
    """All of ``items``."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any of ``items``."""

    items: tuple[Node, ...]


Node = Cmp | And | Or


# -- parsing -----------------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, bool | str):
        return value
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise FilterError(f"{where}: {value} is not a finite number")
        return value
    if isinstance(value, list | tuple):
        raise FilterError(f"{where}: list literals are only allowed with $in / $nin")
    raise FilterError(f"{where}: unsupported literal {value!r} ({type(value).__name__}); use str, number or bool")


def _parse_field(name: str, spec: Any) -> Node:
    if not isinstance(name, str) or not METADATA_KEY_RE.match(name):
        raise FilterError(f"invalid field name {name!r} in filter (letters, digits and '_', no dots)")
    if not isinstance(spec, Mapping):
        return Cmp(name, "eq", _scalar(spec, name))
    if not spec:
        raise FilterError(f"{name}: empty operator dict")
    conds: list[Node] = []
    for raw_op, operand in spec.items():
        op = _OPS.get(raw_op)
        if op is None:
            raise FilterError(f"{name}: unknown operator {raw_op!r}; supported: {', '.join(_OPS)}")
        where = f"{name}.{raw_op}"
        if op in ("in", "nin"):
            if not isinstance(operand, list | tuple) or not operand:
                raise FilterError(f"{where} needs a non-empty list of values")
            conds.append(Cmp(name, op, tuple(_scalar(v, where) for v in operand)))
        else:
            value = _scalar(operand, where)
            if op in _RANGE_OPS and not _is_number(value):
                raise FilterError(f"{where} needs a number, got {value!r}")
            conds.append(Cmp(name, op, value))
    return conds[0] if len(conds) == 1 else And(tuple(conds))


def _parse(spec: Any, where: str) -> Node:
    if not isinstance(spec, Mapping):
        raise FilterError(f"{where}: a filter is a dict, got {type(spec).__name__}")
    if not spec:
        raise FilterError(f"{where}: empty filter (pass None to match everything)")
    items: list[Node] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list | tuple) or not value:
                raise FilterError(f"{key} needs a non-empty list of filters")
            subs = tuple(_parse(v, key) for v in value)
            items.append(And(subs) if key == "$and" else Or(subs))
        elif isinstance(key, str) and key.startswith("$"):
            raise FilterError(f"unknown top-level operator {key!r}; supported: $and, $or")
        else:
            items.append(_parse_field(key, value))
    return items[0] if len(items) == 1 else And(tuple(items))


def parse_filter(spec: Mapping[str, Any] | Node | None) -> Node | None:
    """Validate a filter dict into a tree (None stays None: match everything)."""
    if spec is None or isinstance(spec, Cmp | And | Or):
        return spec
    return _parse(spec, "filter")


def fields_of(node: Node | None) -> set[str]:
    """The metadata keys a filter looks at."""
    if node is None:
        return set()
    if isinstance(node, Cmp):
        return {node.field}
    return set().union(*(fields_of(n) for n in node.items))


# -- helpers that build filters ----------------------------------------------------------------------


def bbox_filter(
    minx: float,
    miny: float,
    maxx: float,
    maxy: float,
    *,
    fields: tuple[str, str, str, str] = ("minx", "miny", "maxx", "maxy"),
) -> dict[str, Any]:
    """Tiles whose bounds intersect the box ``[minx, maxx] x [miny, maxy]`` (edges touching count).

    Tiles keep their bounds as four numeric metadata keys (``fields``, in minx/miny/maxx/maxy order);
    two boxes intersect when neither lies wholly to one side of the other. Boxes crossing the
    antimeridian must be split by the caller into two filters joined with ``$or``.
    """
    for v in (minx, miny, maxx, maxy):
        if not _is_number(v) or not math.isfinite(v):
            raise FilterError(f"bbox_filter: bounds must be finite numbers, got {v!r}")
    if minx > maxx or miny > maxy:
        raise FilterError(f"bbox_filter: empty box (minx={minx} > maxx={maxx} or miny={miny} > maxy={maxy})")
    fminx, fminy, fmaxx, fmaxy = fields
    return {
        "$and": [
            {fmaxx: {"$gte": float(minx)}},
            {fminx: {"$lte": float(maxx)}},
            {fmaxy: {"$gte": float(miny)}},
            {fminy: {"$lte": float(maxy)}},
        ]
    }


# -- the reference semantics, in Python --------------------------------------------------------------


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b)
    return type(a) is type(b)


def _eq(value: Any, literal: Scalar) -> bool:
    if isinstance(value, list):
        return any(_same_kind(v, literal) and v == literal for v in value)
    return _same_kind(value, literal) and value == literal


def _eval(node: Node, metadata: Mapping[str, Any]) -> bool:
    if isinstance(node, And):
        return all(_eval(n, metadata) for n in node.items)
    if isinstance(node, Or):
        return any(_eval(n, metadata) for n in node.items)
    present = node.field in metadata
    value = metadata.get(node.field)
    if node.op == "eq":
        return present and _eq(value, node.value)  # type: ignore[arg-type]
    if node.op == "ne":
        return not (present and _eq(value, node.value))  # type: ignore[arg-type]
    if node.op in ("in", "nin"):
        hit = present and any(_eq(value, lit) for lit in node.value)  # type: ignore[union-attr]
        return hit if node.op == "in" else not hit
    if not present or not _is_number(value):
        return False
    lit = node.value
    return {
        "gt": value > lit, "gte": value >= lit, "lt": value < lit, "lte": value <= lit,  # type: ignore[operator]
    }[node.op]  # fmt: skip


def matches(filter: Mapping[str, Any] | Node | None, metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` satisfies ``filter`` (the reference every backend is tested against)."""
    node = parse_filter(filter)
    return True if node is None else _eval(node, metadata)


# -- LanceDB (DataFusion SQL) ------------------------------------------------------------------------

_SQL_TRUE, _SQL_FALSE = "TRUE", "FALSE"
_SAFE_COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sql_column(name: str) -> str:
    """A column name, validated and quoted for LanceDB SQL (backticks)."""
    if not _SAFE_COLUMN_RE.match(name):
        raise FilterError(f"invalid column name {name!r}")
    return f"`{name}`"


def sql_literal(value: Scalar) -> str:
    """A literal for LanceDB SQL: strings single-quoted with quotes doubled; numbers and booleans plain."""
    if isinstance(value, bool):
        return _SQL_TRUE if value else _SQL_FALSE
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"{value} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise FilterError("string literals may not contain NUL characters")
        return "'" + value.replace("'", "''") + "'"
    raise FilterError(f"unsupported literal {value!r}")


def _literal_fits(ftype: FieldType, literal: Scalar) -> bool:
    if ftype in ("str", "list"):
        return isinstance(literal, str)
    if ftype == "bool":
        return isinstance(literal, bool)
    return _is_number(literal)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int_range_bound(op: str, value: float) -> int | bool:
    """The integer bound equivalent to ``int_col <op> value``, or a constant when it is always/never true.

    DataFusion will not compare an integer column with a float literal, so ``year > 2020.5`` becomes
    ``year > 2020`` (floor for > and <=, ceil for >= and <).
    """
    bound = math.floor(value) if op in ("gt", "lte") else math.ceil(value)
    if bound > _INT64_MAX:
        return op in ("lt", "lte")
    if bound < _INT64_MIN:
        return op in ("gt", "gte")
    return int(bound)


def _sql_range(col: str, ftype: FieldType, op: str, value: float) -> str:
    """``col <op> value`` for a range operator on a column of type ``ftype``."""
    if ftype not in ("int", "float"):
        return _SQL_FALSE
    sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    if ftype == "float":
        return f"{col} {sym} {sql_literal(float(value))}"
    bound = _int_range_bound(op, value)
    if isinstance(bound, bool):
        return f"({col} IS NOT NULL)" if bound else _SQL_FALSE
    return f"{col} {sym} {bound}"


def _fitting_literals(ftype: FieldType, literals: Sequence[Scalar]) -> list[Scalar]:
    """The literals a column of type ``ftype`` can equal, converted to its type (others match nothing)."""
    fitting: list[Scalar] = []
    for lit in literals:
        if not _literal_fits(ftype, lit):
            continue
        if ftype == "int" and isinstance(lit, float):
            if not lit.is_integer() or not _INT64_MIN <= lit <= _INT64_MAX:
                continue  # an integer column never equals 2.5
            lit = int(lit)
        elif ftype == "float" and _is_number(lit):
            lit = float(lit)
        fitting.append(lit)
    return fitting


def _sql_member(col: str, ftype: FieldType, fitting: Sequence[Scalar]) -> str:
    """``col`` equals (a list column: contains) one of ``fitting``."""
    if not fitting:
        return _SQL_FALSE
    if ftype == "list":
        if len(fitting) == 1:
            return f"array_has({col}, {sql_literal(fitting[0])})"
        return f"array_has_any({col}, [{', '.join(sql_literal(v) for v in fitting)}])"
    if len(fitting) == 1:
        return f"{col} = {sql_literal(fitting[0])}"
    return f"{col} IN ({', '.join(sql_literal(v) for v in fitting)})"


def _sql_cmp(node: Cmp, fields: Mapping[str, FieldType]) -> str:
    ftype = fields.get(node.field)
    negated = node.op in ("ne", "nin")
    if ftype is None:  # no row has this key: it equals nothing and is in no range
        return _SQL_TRUE if negated else _SQL_FALSE
    col = sql_column(node.field)
    if node.op in _RANGE_OPS:
        return _sql_range(col, ftype, node.op, node.value)  # type: ignore[arg-type]
    literals: tuple[Scalar, ...] = node.value if isinstance(node.value, tuple) else (node.value,)
    positive = _sql_member(col, ftype, _fitting_literals(ftype, literals))
    if not negated:
        return positive
    if positive == _SQL_FALSE:
        return _SQL_TRUE
    # SQL comparisons with NULL are unknown, not false: a missing key must match $ne / $nin
    return f"({col} IS NULL OR NOT ({positive}))"


def _sql(node: Node, fields: Mapping[str, FieldType]) -> str:
    if isinstance(node, Cmp):
        return _sql_cmp(node, fields)
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(_sql(n, fields) for n in node.items) + ")"


def to_lance_sql(filter: Mapping[str, Any] | Node | None, fields: Mapping[str, FieldType]) -> str | None:
    """A LanceDB ``where`` clause for ``filter``; ``fields`` maps each metadata column to its type.

    Keys that are not columns (no row ever had them) and literals of another type than the column
    become constant TRUE / FALSE, so that the result matches :func:`matches` exactly.
    """
    node = parse_filter(filter)
    return None if node is None else _sql(node, fields)


# -- Astra DB (Data API) -----------------------------------------------------------------------------


def _split(values: Sequence[Scalar]) -> list[list[Scalar]]:
    return [list(values[i : i + ASTRA_MAX_IN_VALUES]) for i in range(0, len(values), ASTRA_MAX_IN_VALUES)]


def _astra(node: Node, prefix: str) -> dict[str, Any]:
    if isinstance(node, And):
        return {"$and": [_astra(n, prefix) for n in node.items]}
    if isinstance(node, Or):
        return {"$or": [_astra(n, prefix) for n in node.items]}
    path = prefix + node.field
    if node.op == "eq":
        return {path: node.value}
    if node.op in ("in", "nin"):
        values = list(node.value)  # type: ignore[arg-type]
        parts = [{path: {f"${node.op}": chunk}} for chunk in _split(values)]
        if len(parts) == 1:
            return parts[0]
        return {"$or": parts} if node.op == "in" else {"$and": parts}
    return {path: {f"${node.op}": node.value}}


def to_astra_filter(filter: Mapping[str, Any] | Node | None, *, prefix: str = "metadata.") -> dict[str, Any]:
    """A Data API filter for ``filter``; keys get ``prefix`` (documents keep metadata under ``metadata``).

    Long ``$in`` / ``$nin`` lists are split into chunks of :data:`ASTRA_MAX_IN_VALUES` joined by
    ``$or`` / ``$and``. Returns ``{}`` (everything) for None.
    """
    node = parse_filter(filter)
    return {} if node is None else _astra(node, prefix)
