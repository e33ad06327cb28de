"""The fast path: a known document is neither parsed nor validated again.

Checked on a small real Strawberry schema (a validation rule that counts its runs, an extension
that records which document object executed) and on the app through /metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import strawberry
from graphql import ASTValidationRule, DocumentNode, OperationDefinitionNode, parse
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, SchemaExtension

from persisted_queries.document_cache import DOCUMENT_HASH, DOCUMENT_MEMO, CachedDocuments, DocumentCache
from tests.conftest import codes, without_cost
from tests.persisted.conftest import OPERATIONS, apq, metric, sha256


class CountingRule(ASTValidationRule):
    runs: ClassVar[int] = 0

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        CountingRule.runs += 1


class SeenDocuments(SchemaExtension):
    seen: ClassVar[list[DocumentNode]] = []

    def on_execute(self) -> Iterator[None]:
        assert self.execution_context.graphql_document is not None
        SeenDocuments.seen.append(self.execution_context.graphql_document)
        yield


class NoIntrospectionFor(SchemaExtension):
    """Adds a rule for some requests only, as a policy for anonymous callers would."""

    def on_operation(self) -> Iterator[None]:
        if (self.execution_context.context or {}).get("anonymous"):
            rules = self.execution_context.validation_rules
            self.execution_context.validation_rules = (*rules, NoSchemaIntrospectionCustomRule)
        yield


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"hello {name}"


def small_schema(cache: DocumentCache) -> strawberry.Schema:
    return strawberry.Schema(query=Query, extensions=[
        lambda: AddValidationRules([CountingRule]), NoIntrospectionFor, SeenDocuments, lambda: CachedDocuments(cache),
    ])


def reset() -> None:
    CountingRule.runs = 0
    SeenDocuments.seen.clear()


HELLO = "query Hello($name: String!) { hello(name: $name) }"


async def test_a_known_document_is_parsed_and_validated_once() -> None:
    reset()
    schema = small_schema(DocumentCache(10_000))
    for name in ("a", "b", "c"):
        result = await schema.execute(HELLO, variable_values={"name": name})
        assert result.data == {"hello": f"hello {name}"}
    assert CountingRule.runs == 1
    assert SeenDocuments.seen[0] is SeenDocuments.seen[1] is SeenDocuments.seen[2]


@dataclass
class Context:
    extras: dict[str, object] = field(default_factory=dict)

    def get(self, key: str) -> object:
        return None


async def test_the_hash_the_transport_computed_is_the_key() -> None:
    reset()
    cache = DocumentCache(10_000)
    schema = small_schema(cache)
    await schema.execute(HELLO, variable_values={"name": "a"}, context_value=Context({DOCUMENT_HASH: "from-transport"}))
    assert cache.get("from-transport") is not None
    await schema.execute(HELLO, variable_values={"name": "b"}, context_value=Context())
    assert cache.get(sha256(HELLO)) is not None  # nothing given: the extension hashes the text itself


async def test_rules_that_differ_per_request_are_applied() -> None:
    reset()
    schema = small_schema(DocumentCache(10_000))
    introspection = "{ __schema { queryType { name } } }"
    allowed = await schema.execute(introspection, context_value={})
    assert allowed.errors is None
    refused = await schema.execute(introspection, context_value={"anonymous": True})
    assert refused.errors and "introspection" in refused.errors[0].message
    again = await schema.execute(introspection, context_value={})
    assert again.errors is None


async def test_invalid_documents_are_validated_every_time_with_their_own_errors() -> None:
    reset()
    schema = small_schema(DocumentCache(10_000))
    wrong = "{ goodbye }"
    first, second = await schema.execute(wrong), await schema.execute(wrong)
    assert CountingRule.runs == 2
    assert first.errors and second.errors
    assert first.errors[0] is not second.errors[0]


class CostOnce(SchemaExtension):
    """What a cost analysis cached per document and variables shape would do with the memo."""

    analyses: ClassVar[int] = 0

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        memo = context.context.extras[DOCUMENT_MEMO]
        shape = tuple(sorted((name, type(value).__name__) for name, value in (context.variables or {}).items()))
        if ("cost", shape) not in memo:
            CostOnce.analyses += 1
            memo["cost", shape] = 1
        yield


async def test_derived_results_live_as_long_as_the_document() -> None:
    CostOnce.analyses = 0
    cache = DocumentCache(10_000)
    schema = strawberry.Schema(query=Query, extensions=[lambda: CachedDocuments(cache), CostOnce])
    for variables in ({"name": "a"}, {"name": "b"}, {"name": "c"}):
        assert (await schema.execute(HELLO, variable_values=variables, context_value=Context())).errors is None
    assert CostOnce.analyses == 1
    await schema.execute(HELLO, variable_values={"name": "d", "page": 2}, context_value=Context())  # another shape
    assert CostOnce.analyses == 2


def test_pinned_documents_are_never_evicted() -> None:
    cache = DocumentCache(50)
    pinned = parse(HELLO)
    cache.pin({"p": pinned})
    for i in range(5):
        cache.remember_valid(f"doc{i}", parse("{ hello }"), 20, ())
    found = cache.get("p")
    assert found is not None and found.document is pinned


def test_the_cache_is_bounded_by_source_length_least_recently_used_first() -> None:
    cache = DocumentCache(100)
    for name in ("a", "b"):
        cache.remember_valid(name, parse("{ hello }"), 40, ())
    assert cache.get("a") is not None  # now the most recent
    cache.remember_valid("c", parse("{ hello }"), 40, ())
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    cache.remember_valid("huge", parse("{ hello }"), 101, ())  # larger than the whole cache: skipped
    assert cache.get("huge") is None and cache.get("a") is not None


# --- in the app -----------------------------------------------------------------------------------


async def test_app_serves_known_documents_from_the_cache(client: httpx.AsyncClient) -> None:
    query = "query Typename { __typename }"
    for _ in range(3):
        response = await client.post("/graphql", json={"query": query})
        assert without_cost(response.json()) == {"data": {"__typename": "Query"}}
    assert await metric(client, "tandem_document_cache_lookups_total", result="miss") == 1
    assert await metric(client, "tandem_document_cache_lookups_total", result="hit") == 2


async def test_trusted_documents_are_parsed_before_their_first_use(client: httpx.AsyncClient) -> None:
    dashboard = OPERATIONS["ViewerDashboard"]
    response = await client.post("/graphql", json={"documentId": dashboard["id"]})
    assert without_cost(response.json()) == {"data": {"viewer": None}}
    assert await metric(client, "tandem_document_cache_lookups_total", result="hit") == 1
    assert await metric(client, "tandem_document_cache_lookups_total", result="miss") == 0


async def test_concurrent_invalid_requests_keep_their_own_request_ids(client: httpx.AsyncClient) -> None:
    wrong = "{ viewer { shoeSize } }"
    responses = await asyncio.gather(*(
        client.post("/graphql", json={"query": wrong, "extensions": apq(wrong)}) for _ in range(5)))
    for response in responses:
        assert codes(response.json()) == ["BAD_USER_INPUT"]
        assert response.json()["errors"][0]["extensions"]["requestId"] == response.headers["x-request-id"]

