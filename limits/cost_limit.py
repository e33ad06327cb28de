"""`CostLimit`: price the operation, charge the caller's bucket, run, refund, report.

Before any resolver runs: the operation is priced from the validated document and its variables
(`limits.cost`); above the maximum cost per request (or above the caller's whole bucket) it is
refused with `QUERY_TOO_COMPLEX`; otherwise the caller's bucket is charged the requested cost in one
call, and an empty bucket refuses it with `RATE_LIMITED` (HTTP 429 and `Retry-After`). After a
query or mutation ran, the actual cost is counted from the result and the difference refunded. A
subscription is charged once, when it starts.

Every result gets `extensions.cost`, and the transport gets the `RateLimit` and `RateLimit-Policy`
header fields (draft-ietf-httpapi-ratelimit-headers) through the context's `extras`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension

from limits.buckets import Verdict
from limits.cost import MAX_COST, actual_cost, coerce_variables, requested_cost
from limits.cost_model import CostModel
from limits.limiter import Bucket, Limiter
from limits.query_limits import limit_error
from limits.shape import operations
from resolvers.context import Context
from resolvers.errors import QueryTooComplex, RateLimited
from resolvers.rate_limit import RateLimitStatus, set_rate_limit_status

# Keys of `Context.extras` shared with the transports.
CLIENT_ADDRESS = "client_address"  # set by the transport: the peer's IP address
RESPONSE_HEADERS = "response_headers"  # read by the HTTP transport
RESPONSE_STATUS = "response_status"  # read by the HTTP transport: 429 (or 503 when failing closed)


class CostLimitConfig:
    """Built once per app and shared by every request's `CostLimit`."""

    def __init__(self, limiter: Limiter, *, max_cost: int = 1_000) -> None:
        self.limiter = limiter
        self.max_cost = max_cost
        self._model: CostModel | None = None

    def model(self, schema: GraphQLSchema) -> CostModel:
        """The price list of `schema`, read once (the schema is built after its extensions)."""
        if self._model is None or self._model.schema is not schema:
            self._model = CostModel(schema)
        return self._model


class CostLimit(SchemaExtension):
    def __init__(self, config: CostLimitConfig) -> None:
        super().__init__()
        self.config = config
        self.requested: int | None = None
        self.actual = 0
        self.refund = 0
        self.bucket: Bucket | None = None
        self.verdict: Verdict | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        document = self.execution_context.graphql_document
        operation = _operation(document, self.execution_context.operation_name)
        if not isinstance(context, Context) or document is None or operation is None:
            yield
            return
        model = self.config.model(self.execution_context.schema._schema)
        variables = coerce_variables(model, operation, self.execution_context.variables)
        if variables is None:  # graphql-core refuses the variables before any resolver runs
            yield
            return
        self.requested = requested_cost(model, document, operation, variables)
        bucket = self.bucket = self._bucket(context)
        limit = min(self.config.max_cost, bucket.policy.capacity)
        if self.requested > limit:
            at_least = "at least " if self.requested == MAX_COST else ""
            raise limit_error(QueryTooComplex, f"The query costs {at_least}{self.requested}", limit, self.requested)
        charge = await self.config.limiter.charge(bucket, self.requested)
        self.verdict = charge.verdict
        if not charge.verdict.allowed:
            raise self._refused(context, charge.verdict, unavailable=charge.unavailable)
        set_rate_limit_status(context, _status(charge.verdict, self.requested))
        yield
        if operation.operation == OperationType.SUBSCRIPTION:
            return  # charged once, when it starts
        result = self.execution_context.result
        data = getattr(result, "data", None)
        self.actual = actual_cost(model, document, operation, variables, data)
        self.refund = max(0, self.requested - self.actual)
        self.config.limiter.refund(bucket, self.refund)

    async def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        if not isinstance(context, Context):
            return {}
        if self.verdict is None:
            # Nothing was charged (the request stopped before execution): read the bucket.
            self.bucket = self.bucket or self._bucket(context)
            self.verdict = (await self.config.limiter.charge(self.bucket, 0)).verdict
        verdict = self.verdict
        available = min(verdict.policy.capacity, math.floor(verdict.available + self.refund))
        headers = context.extras.setdefault(RESPONSE_HEADERS, {})
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

    def _bucket(self, context: Context) -> Bucket:
        address = context.extras.get(CLIENT_ADDRESS)
        return self.config.limiter.bucket(context.viewer, address if isinstance(address, str) else None)

    def _refused(self, context: Context, verdict: Verdict, *, unavailable: bool) -> GraphQLError:
        assert self.requested is not None
        if unavailable:
            retry_after = 1
            message = "The rate limiter is unavailable; try again shortly."
        else:
            retry_after = verdict.retry_after(self.requested)
            message = (f"This query costs {self.requested} and {math.floor(verdict.available)} of "
                       f"{verdict.policy.capacity} points are available; retry in {retry_after} s.")
        context.extras[RESPONSE_STATUS] = 503 if unavailable else 429
        headers = context.extras.setdefault(RESPONSE_HEADERS, {})
        if isinstance(headers, dict):
            headers["Retry-After"] = str(retry_after)
        return GraphQLError(message, original_error=RateLimited(message, retry_after=retry_after),
                            extensions={"retryAfter": retry_after})


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


def _operation(document: DocumentNode | None, name: str | None) -> OperationDefinitionNode | None:
    if document is None:
        return None
    found = operations(document, name)
    return found[0] if len(found) == 1 else None


def _status(verdict: Verdict, cost: int) -> RateLimitStatus:
    return RateLimitStatus(
        tier=verdict.policy.name,
        limit=verdict.policy.capacity,
        remaining=math.floor(verdict.available),
        restore_rate=verdict.policy.restore_rate,
        cost=cost,
        reset_at=datetime.now(UTC) + timedelta(seconds=verdict.full_in),
    )
