"""Known operations, run without Strawberry's per-request extension pipeline.

`schema.execute` takes every operation through the schema extensions, phase by phase (operation,
parsing, validation, execution), whatever the document. For a document the document cache already
holds as valid, most of that has a known outcome: it is not parsed again, not validated again, and
its shape passed the static limits the first time this operation name was asked for. What is left
depends on the request: the cost charge, execution, error shaping and the refund. Those run here,
with the very parts the extensions use (`CostCharge` is what the `CostLimit` extension drives, the
executor is the schema's, errors go through `shape_errors`), in the order the pipeline runs them,
which took about a third off the CPU of a `{ __typename }` request in-process (~240 → ~165 µs).

Everything else still goes through `schema.execute`: a document seen for the first time, one that
breaks a static limit, an operation name that does not pick exactly one operation, subscriptions,
and every operation when tracing is on (its extension wraps the phases). tests/http/test_prepared.py
runs the same requests both ways and compares the answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationDefinitionNode, specified_rules
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from limits.cost_limit import CostCharge, CostLimitConfig
from limits.introspection import IntrospectionPolicy
from limits.query_limits import StaticLimits
from limits.shape import measure, operations
from persisted_queries.document_cache import DOCUMENT_MEMO, CachedDocument, DocumentCache
from resolvers.context import Context, Viewer
from schema import TandemSchema
from schema.errors import shape_errors
from schema.executor_template import ExecutorTemplate

# The rules `schema.execute` validates with (Strawberry's default); a document valid under them may skip.
_RULES = tuple(specified_rules)
_PLAN = "prepared operation"  # key prefix in a document's memo


@dataclass(slots=True)
class _Plan:
    operation: OperationDefinitionNode
    type: OperationType
    template: ExecutorTemplate | None = None  # from the first request that built an executor


_UNSUITED = object()  # remembered too: this document and name always take `schema.execute`


@dataclass(frozen=True, slots=True)
class Prepared:
    entry: CachedDocument
    plan: _Plan


class PreparedOperations:
    def __init__(
        self, schema: TandemSchema, documents: DocumentCache, *, static_limits: StaticLimits | None,
        cost: CostLimitConfig | None, introspection: IntrospectionPolicy | None = None,
    ) -> None:
        if schema._schema.get_directive("defer") or schema._schema.get_directive("stream"):
            raise ValueError("incremental delivery (@defer/@stream) needs graphql-core's `execute`")
        self.schema = schema
        self.documents = documents
        self.static_limits = static_limits
        self.cost = cost
        self.introspection = introspection

    def find(self, sha256: str, operation_name: str | None, viewer: Viewer | None = None) -> Prepared | None:
        """The prepared operation, when this document and name can take the short way for this caller."""
        entry = self.documents.peek(sha256)
        if entry is None:
            return None
        if self.introspection is not None and self.introspection.extra_rules(viewer):
            if self.introspection.rules(viewer) not in entry.valid_under:  # e.g. no introspection for this caller
                return None
        key = (_PLAN, operation_name)
        plan = entry.derived.get(key)
        if plan is None:
            if _RULES not in entry.valid_under:  # checked once: an entry never stops being valid
                return None
            found = operations(entry.document, operation_name)
            plan = self._plan(entry, operation_name, found)
            if found:  # remembered only for names the document has: the client chooses the name
                entry.derived[key] = plan
        if not isinstance(plan, _Plan):
            return None
        self.documents.hit()
        return Prepared(entry, plan)

    def _plan(
        self, entry: CachedDocument, operation_name: str | None, found: list[OperationDefinitionNode]
    ) -> _Plan | object:
        if len(found) != 1 or found[0].operation.value == "subscription":
            return _UNSUITED  # `schema.execute` raises or refuses it, as it should
        if self.static_limits is not None and self.static_limits.violation(
            measure(entry.document, operation_name)
        ) is not None:
            return _UNSUITED  # the limit error is made per request, with its request id
        return _Plan(found[0], OperationType(found[0].operation.value))

    async def run(
        self, prepared: Prepared, context: Context, variables: dict[str, Any] | None, operation_name: str | None,
        allowed: set[OperationType],
    ) -> ExecutionResult:
        """What `schema.execute` would answer; raises `InvalidOperationTypeError` as it does."""
        plan = prepared.plan
        if plan.type not in allowed:
            raise InvalidOperationTypeError(plan.type)
        document = prepared.entry.document
        context.extras[DOCUMENT_MEMO] = prepared.entry.derived
        charge = CostCharge(self.cost, context) if self.cost is not None else None
        graphql_schema = self.schema._schema
        try:
            if charge is not None:
                await charge.begin(graphql_schema, document, plan.operation, variables)
            # What graphql-core's `execute` does, without its two wrappers (this schema has no @defer/@stream).
            if plan.template is not None:
                executor = plan.template.executor(context, variables)
            else:
                executor = self.schema.execution_context_class.build(
                    graphql_schema, document, context_value=context, raw_variable_values=variables,
                    operation_name=operation_name, is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
                    operation_extensions=None,
                )
                if not isinstance(executor, list):
                    plan.template = ExecutorTemplate(executor)
            if isinstance(executor, list):  # the variables do not fit the operation
                result = GraphQLExecutionResult(None, errors=executor)
            else:
                outcome = executor.execute_operation()
                produced = await outcome if isawaitable(outcome) else outcome
                if not isinstance(produced, GraphQLExecutionResult):
                    raise GraphQLError("Executing this operation produced more than one result.")
                result = produced
        except Exception as exc:  # as `schema.execute` answers an error raised by an extension
            error = exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)
            shape_errors([error], context.request_id)
            data: dict[str, Any] | None = None
            errors: list[GraphQLError] | None = [error]
        else:
            data, errors = result.data, result.errors
            if errors:
                shape_errors(errors, context.request_id)
            if charge is not None:
                charge.settle(data)
        extensions = await charge.report() if charge is not None else {}
        return ExecutionResult(data=data, errors=errors, extensions=extensions)
