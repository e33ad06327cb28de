"""`CostLimit`: price the operation, charge the caller's bucket, run, refund, report.

Before any resolver runs: the operation is priced from the validated document and its variables
(`limits.cost`); above the maximum cost per request (or above the caller's whole bucket) it is
refused with `QUERY_TOO_COMPLEX`; otherwise the caller's bucket is charged the requested cost in one
call, and an empty bucket refuses it with `RATE_LIMITED` (HTTP 429 and `Retry-After`). After a
query or mutation ran, the actual cost is counted from the result and the difference refunded. A
subscription is charged once, when it starts.

With a document cache that leaves a per-document memo in `context.extras` (`document_memo`), the
requested cost of a cached document is remembered per operation and variables (a bounded number of
them per document), so a repeated query is not priced again.

Every result gets `extensions.cost`, and the transport gets the `RateLimit` and `RateLimit-Policy`
header fields (draft-ietf-httpapi-ratelimit-headers) through the context's `extras`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension

from limits.buckets import Verdict
from limits.cost import MAX_COST, CountingPlans, actual_cost, coerce_variables, requested_cost
from limits.cost_model import CostModel
from limits.limiter import Bucket, Limiter
from limits.query_limits import limit_error
from limits.shape import operations
from resolvers.context import Context
from resolvers.errors import QueryTooComplex, RateLimited
from resolvers.rate_limit import RateLimitStatus, set_rate_limit_status

# Keys of `Context.extras` shared with the transports.
RESPONSE_HEADERS = "response_headers"  # read by the HTTP transport
RESPONSE_STATUS = "response_status"  # read by the HTTP transport: 429 (or 503 when failing closed)


class CostLimitConfig:
    """Built once per app and shared by every request's `CostLimit`."""

    def __init__(self, limiter: Limiter, *, max_cost: int = 1_000, document_memo: str | None = None) -> None:
        self.limiter = limiter
        self.max_cost = max_cost
        self.document_memo = document_memo  # the `context.extras` key of a cached document's memo
        self._model: CostModel | None = None

    def model(self, schema: GraphQLSchema) -> CostModel:
        """The price list of `schema`, read once (the schema is built after its extensions)."""
        if self._model is None or self._model.schema is not schema:
            self._model = CostModel(schema)
        return self._model


class CostCharge:
    """One operation's charge: priced and charged before it runs, refunded after, reported.

    `CostLimit` (the schema extension) drives one per operation; so can a transport that runs a known
    operation without Strawberry's extension pipeline (app/prepared.py), with the same outcome.
    """

    def __init__(self, config: CostLimitConfig, context: Context) -> None:
        self.config = config
        self.context = context
        self.requested: int | None = None
        self.actual = 0
        self.refund = 0
        self.bucket: Bucket | None = None
        self.verdict: Verdict | None = None
        self._counting: tuple[CostModel, DocumentNode, OperationDefinitionNode, dict[str, Any], _Known] | None = None

    async def begin(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
        raw_variables: dict[str, Any] | None,
    ) -> None:
        """Price and charge; raises the `GraphQLError` to answer with when the operation may not run."""
        model = self.config.model(schema)
        variables = coerce_variables(model, operation, raw_variables) if operation.variable_definitions else {}
        if variables is None:  # graphql-core refuses the variables before any resolver runs
            return
        known = self._known(operation, raw_variables)
        if known.requested is None:
            known.requested = requested_cost(model, document, operation, variables)
        requested = self.requested = known.requested
        bucket = self.bucket = self._bucket()
        limit = min(self.config.max_cost, bucket.policy.capacity)
        if requested > limit:
            at_least = "at least " if requested == MAX_COST else ""
            raise limit_error(QueryTooComplex, f"The query costs {at_least}{requested}", limit, requested)
        charge = await self.config.limiter.charge(bucket, requested)
        self.verdict = charge.verdict
        if not charge.verdict.allowed:
            raise self._refused(charge.verdict, unavailable=charge.unavailable)
        set_rate_limit_status(self.context, _status(charge.verdict, requested))
        if operation.operation != OperationType.SUBSCRIPTION:  # charged once, when it starts
            self._counting = (model, document, operation, variables, known)

    def settle(self, data: Mapping[str, Any] | None) -> None:
        """Count what the result cost and refund the rest of the charge."""
        if self._counting is None or self.bucket is None or self.requested is None:
            return
        model, document, operation, variables, known = self._counting
        # Asking for nothing priced (`{ __typename }`) cannot have used anything: no need to count.
        self.actual = actual_cost(model, document, operation, variables, data, known.counting_plans) \
            if self.requested else 0
        self.refund = max(0, self.requested - self.actual)
        self.config.limiter.refund(self.bucket, self.refund)

    async def report(self) -> dict[str, Any]:
        """`extensions.cost`; also leaves the `RateLimit` header fields for the transport."""
        if self.verdict is None:
            # Nothing was charged (the request stopped before execution): read the bucket.
            self.bucket = self.bucket or self._bucket()
            self.verdict = (await self.config.limiter.charge(self.bucket, 0)).verdict
        verdict = self.verdict
        available = min(verdict.policy.capacity, math.floor(verdict.available + self.refund))
        headers = self.context.extras.setdefault(RESPONSE_HEADERS, {})
        if isinstance(headers, dict):
            headers.update(rate_limit_headers(verdict, available))
        return {"cost": {
            "requestedQueryCost": self.requested,
            "actualQueryCost": self.actual,
            "throttleStatus": {
                "maximumAvailable": verdict.policy.capacity,
                "currentlyAvailable": available,
                "restoreRate": verdict.policy.restore_rate,
            },
        }}

    def _known(self, operation: OperationDefinitionNode, raw_variables: dict[str, Any] | None) -> _Known:
        """What is known of this operation with these variables: remembered in a cached document's memo."""
        memo = self.context.extras.get(self.config.document_memo) if self.config.document_memo else None
        key = _price_key(operation, raw_variables)
        if not isinstance(memo, dict) or key is None:
            return _Known()
        known = memo.get(key)
        if isinstance(known, _Known):
            return known
        known = _Known()
        remembered = memo.setdefault(_PRICES, [0])
        if remembered[0] < _MAX_PRICES_PER_DOCUMENT:  # variables are the client's: bound what they can store
            remembered[0] += 1
            memo[key] = known
        return known

    def _bucket(self) -> Bucket:
        return self.config.limiter.bucket(self.context.viewer, self.context.client_address)

    def _refused(self, verdict: Verdict, *, unavailable: bool) -> GraphQLError:
        assert self.requested is not None
        if unavailable:
            retry_after = 1
            message = "The rate limiter is unavailable; try again shortly."
        else:
            retry_after = verdict.retry_after(self.requested)
            message = (f"This query costs {self.requested} and {math.floor(verdict.available)} of "
                       f"{verdict.policy.capacity} points are available; retry in {retry_after} s.")
        extras = self.context.extras
        extras[RESPONSE_STATUS] = 503 if unavailable else 429
        headers = extras.setdefault(RESPONSE_HEADERS, {})
        if isinstance(headers, dict):
            headers["Retry-After"] = str(retry_after)
        return GraphQLError(message, original_error=RateLimited(message, retry_after=retry_after),
                            extensions={"retryAfter": retry_after})


class CostLimit(SchemaExtension):
    def __init__(self, config: CostLimitConfig) -> None:
        super().__init__()
        self.config = config
        self.charge: CostCharge | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        operation = _operation(document, execution.operation_name)
        if not isinstance(context, Context) or document is None or operation is None:
            yield
            return
        charge = self.charge = CostCharge(self.config, context)
        await charge.begin(execution.schema._schema, document, operation, execution.variables)
        yield
        charge.settle(getattr(execution.result, "data", None))

    async def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        if not isinstance(context, Context):
            return {}
        charge = self.charge or CostCharge(self.config, context)
        return await charge.report()


def rate_limit_headers(verdict: Verdict, available: int) -> dict[str, str]:
    """`RateLimit-Policy: "user";q=1000;w=20` and `RateLimit: "user";r=950;t=1`.

    q is the bucket's capacity and w the seconds it takes to fill from empty; r is what remains and
    t the seconds until it is full again. The unit is query cost points, not requests.
    """
    policy = verdict.policy
    full_in = math.ceil(max(0.0, policy.capacity - available) / policy.restore_rate)
    return {
        "RateLimit-Policy": f'"{policy.name}";q={policy.capacity};w={policy.window}',
        "RateLimit": f'"{policy.name}";r={max(0, available)};t={full_in}',
    }


@dataclass(slots=True)
class _Known:
    """An operation's price with some variables, and the plans for counting its actual cost."""

    requested: int | None = None
    counting_plans: CountingPlans = field(default_factory=dict)


_PRICES = "prices remembered"
_MAX_PRICES_PER_DOCUMENT = 32
_MAX_VARIABLES_KEY_BYTES = 512


def _price_key(operation: OperationDefinitionNode, raw_variables: dict[str, Any] | None) -> Hashable | None:
    """What an operation's price depends on besides the document; None when not worth remembering."""
    name = operation.name.value if operation.name else None
    if not operation.variable_definitions:
        return ("price", name, b"")
    try:
        encoded = orjson.dumps(raw_variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return ("price", name, encoded) if len(encoded) <= _MAX_VARIABLES_KEY_BYTES else None


def _operation(document: DocumentNode | None, name: str | None) -> OperationDefinitionNode | None:
    if document is None:
        return None
    found = operations(document, name)
    return found[0] if len(found) == 1 else None


def _status(verdict: Verdict, cost: int) -> Callable[[], RateLimitStatus]:
    charged_at = time.time()
    return lambda: RateLimitStatus(
        tier=verdict.policy.name,
        limit=verdict.policy.capacity,
        remaining=math.floor(verdict.available),
        restore_rate=verdict.policy.restore_rate,
        cost=cost,
        reset_at=datetime.fromtimestamp(charged_at + verdict.full_in, UTC),
    )
