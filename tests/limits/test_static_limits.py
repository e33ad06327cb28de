"""Attacker documents against the static limits: each is refused with its exact code, a message that
names the limit and the value found, HTTP 400, and not one resolver call.

These limits read the document only, so one database is enough.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from db.models import User
from tests.limits.conftest import LimitedApp

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _nested(levels: int) -> str:
    """`{ viewer { documents(first: 1) { nodes { owner { ... name } } } } }`, `levels` fields deep."""
    # viewer (1), then `documents { nodes { owner {` adds 3 per round; close with `name`.
    body, depth = "name", 2
    rounds = []
    while depth + 3 <= levels:
        rounds.append("documents(first: 1) { nodes { owner {")
        depth += 3
    filler = levels - depth  # 0, 1 or 2 more levels
    inner = {0: "name", 1: "documents { totalCount }", 2: "documents { pageInfo { hasNextPage } }"}[filler]
    body = " ".join(rounds) + f" {inner} " + "} } }" * len(rounds)
    return "{ viewer { " + body + " } }"


def _refused(response: httpx.Response, code: str, limit: int, found: int | None) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert "data" not in body
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["limit"] == limit
    assert error["extensions"]["found"] == found
    assert f"the limit is {limit}" in error["message"]
    if found is not None:
        assert str(found) in error["message"]
    assert error["extensions"]["requestId"]
    return body


# --- depth --------------------------------------------------------------------------------------


async def test_depth_at_the_limit_runs(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app() as limited:
        response = await limited.query(_nested(10), as_user=alice)
    assert response.status_code == 200, response.text
    assert "errors" not in response.json()
    assert limited.resolved


async def test_deep_query_is_refused_before_any_resolver(limited_app: LimitedApp, alice: User) -> None:
    async with limited_app() as limited:
        response = await limited.query(_nested(11), as_user=alice)
        _refused(response, "QUERY_TOO_DEEP", 10, 11)
        assert limited.resolved == []


async def test_depth_counts_through_fragments(limited_app: LimitedApp) -> None:
    query = """{ viewer { ...A } }
      fragment A on User { documents { nodes { ...B } } }
      fragment B on Document { owner { documents { nodes { owner { ...C } } } } }
      fragment C on User { documents { nodes { owner { name } } } }"""  # 1 + 2 + 4 + 4 = 11
    async with limited_app() as limited:
        _refused(await limited.query(query), "QUERY_TOO_DEEP", 10, 11)
        assert limited.resolved == []


async def test_a_chain_of_fragments_is_measured_without_recursion(limited_app: LimitedApp) -> None:
    # 400 fragments, each one field deeper than the last: far past Python's recursion limit if
    # the measurement recursed per spread.
    chain = "\n".join(f"fragment F{i} on User {{ documents {{ nodes {{ owner {{ ...F{i + 1} }} }} }} }}"
                      for i in range(400))
    query = f"{{ viewer {{ ...F0 }} }}\n{chain}\nfragment F400 on User {{ name }}"
    async with limited_app(max_query_tokens=20_000) as limited:
        _refused(await limited.query(query), "QUERY_TOO_DEEP", 10, 1 + 3 * 400 + 1)
        assert limited.resolved == []


async def test_depth_limit_is_a_setting(limited_app: LimitedApp) -> None:
    async with limited_app(max_query_depth=2) as limited:
        _refused(await limited.query("{ viewer { documents { totalCount } } }"), "QUERY_TOO_DEEP", 2, 3)


# --- introspection is priced like any other query ----------------------------------------------


async def test_what_is_under_introspection_adds_no_depth(limited_app: LimitedApp) -> None:
    # `ofType` nested 9 times: 15 fields deep, counted as 1 (tests/limits/test_introspection.py).
    async with limited_app(max_query_depth=2) as limited:
        response = await limited.query(get_introspection_query())
    assert response.status_code == 200, response.text


async def test_a_shallow_introspection_query_is_priced_and_runs(limited_app: LimitedApp) -> None:
    query = get_introspection_query(descriptions=True, input_value_deprecation=True, type_depth=4)
    async with limited_app() as limited:
        response = await limited.query(query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body and body["data"]["__schema"]["types"]
    cost = body["extensions"]["cost"]
    assert 0 < cost["actualQueryCost"] <= cost["requestedQueryCost"] < 1_000


async def test_introspection_is_priced_like_any_query(limited_app: LimitedApp) -> None:
    # graphql-core already refuses introspection lists nested more than 3 deep; what is left is
    # priced: each copy costs about 80 here, and 13 of them are over the maximum.
    nested = ("__schema { types { name fields { name args { name type { name ofType { name } } } "
              "type { name ofType { name ofType { name } } } } inputFields { name type { name } } "
              "enumValues { name } } }")
    query = "{ " + " ".join(f"a{i}: {nested}" for i in range(13)) + " }"
    async with limited_app() as limited:
        response = await limited.query(query)
        assert response.status_code == 400
        assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["QUERY_TOO_COMPLEX"]
        assert limited.resolved == []


# --- aliases, tokens, directives, root fields ---------------------------------------------------


async def test_alias_bomb_is_refused(limited_app: LimitedApp) -> None:
    query = "{ " + " ".join(f"a{i}: viewer {{ name }}" for i in range(16)) + " }"
    async with limited_app() as limited:
        _refused(await limited.query(query), "QUERY_TOO_COMPLEX", 15, 16)
        assert limited.resolved == []


async def test_aliases_in_fragments_count_once_per_fragment(limited_app: LimitedApp) -> None:
    fragment = "fragment F on Query { " + " ".join(f"a{i}: __typename" for i in range(10)) + " }"
    async with limited_app() as limited:
        # F is written once and executed once however often it is spread.
        ok = await limited.query("{ ...F ...F ...F } " + fragment)
        assert ok.status_code == 200 and len(ok.json()["data"]) == 10
        more = "fragment G on Query { " + " ".join(f"b{i}: __typename" for i in range(6)) + " }"
        _refused(await limited.query("{ ...F ...G } " + fragment + " " + more), "QUERY_TOO_COMPLEX", 15, 16)


async def test_conflicting_alias_flood_is_refused_before_validation(limited_app: LimitedApp) -> None:
    # Pairs of conflicting fields make graphql-core's overlapping-fields check quadratic; the alias
    # limit must answer first (the error is about aliases, not about the conflict).
    query = "{ viewer { " + " ".join("name: createdAt name" for _ in range(300)) + " } }"
    async with limited_app() as limited:
        _refused(await limited.query(query), "QUERY_TOO_COMPLEX", 15, 300)


async def test_too_many_tokens(limited_app: LimitedApp) -> None:
    query = "{ viewer { " + "name " * 2_000 + "} }"  # 2,005 tokens
    async with limited_app() as limited:
        _refused(await limited.query(query), "QUERY_TOO_COMPLEX", 2_000, 2_005)
        assert limited.resolved == []


async def test_a_huge_document_is_not_counted_to_its_end(limited_app: LimitedApp) -> None:
    query = "{ viewer { " + "name " * 100_000 + "} }"
    async with limited_app(max_query_tokens=100) as limited:
        body = _refused(await limited.query(query), "QUERY_TOO_COMPLEX", 100, None)
    assert "more than 1000 tokens" in body["errors"][0]["message"]


async def test_comment_flood(limited_app: LimitedApp) -> None:
    query = "{ viewer { name } }" + "\n#" * 2_500
    async with limited_app() as limited:
        _refused(await limited.query(query), "QUERY_TOO_COMPLEX", 2_000, None)


async def test_directive_flood(limited_app: LimitedApp) -> None:
    query = "{ viewer { " + " ".join("name @include(if: true)" for _ in range(51)) + " } }"
    async with limited_app() as limited:
        _refused(await limited.query(query), "QUERY_TOO_COMPLEX", 50, 51)
        assert limited.resolved == []


async def test_too_many_root_fields(limited_app: LimitedApp) -> None:
    query = "{ viewer { id } rateLimit { cost } __typename a: __typename b: __typename c: __typename }"
    async with limited_app(max_root_fields=5) as limited:
        _refused(await limited.query(query), "QUERY_TOO_COMPLEX", 5, 6)
        assert limited.resolved == []
        # The same key twice is one field: graphql-core merges them.
        ok = await limited.query("{ viewer { id } viewer { name } __typename a: __typename b: __typename }")
    assert ok.status_code == 200


# --- fragments cannot blow the analysis up ------------------------------------------------------


async def test_fragment_bomb_is_priced_without_expanding_it(limited_app: LimitedApp, alice: User) -> None:
    # Written out, this is 3^40 copies of `documents(first: 1) { totalCount }`; each fragment is
    # priced once, so the analysis is a few hundred steps and the price is astronomical.
    fragments = "\n".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    query = f"{{ viewer {{ ...F0 }} }}\n{fragments}\nfragment F40 on User {{ documents(first: 1) {{ totalCount }} }}"
    async with limited_app() as limited:
        response = await limited.query(query, as_user=alice)
        # 1 + 2 * 3^40 is past what JSON numbers hold exactly: reported as "at least 2^53 - 1".
        _refused(response, "QUERY_TOO_COMPLEX", 1_000, 2**53 - 1)
        assert limited.resolved == []


async def test_fragment_cycle_is_a_validation_error_not_a_crash(limited_app: LimitedApp) -> None:
    query = "{ ...A } fragment A on Query { viewer { ...B } } fragment B on User { documents { nodes { owner { ...B } } } }"
    async with limited_app() as limited:
        response = await limited.query(query)
        assert response.status_code == 400
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "within itself" in error["message"]
        assert limited.resolved == []


async def test_unknown_fragment_is_a_validation_error(limited_app: LimitedApp) -> None:
    async with limited_app() as limited:
        response = await limited.query("{ ...Missing }")
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_only_the_operation_that_runs_is_measured(limited_app: LimitedApp) -> None:
    document = f"query Deep {_nested(11)} query Shallow {{ __typename }}"
    async with limited_app() as limited:
        shallow = await limited.post({"query": document, "operationName": "Shallow"})
        deep = await limited.post({"query": document, "operationName": "Deep"})
    assert shallow.status_code == 200 and shallow.json()["data"] == {"__typename": "Query"}
    _refused(deep, "QUERY_TOO_DEEP", 10, 11)


# --- directive overloading ----------------------------------------------------------------------


async def test_a_repeated_unknown_directive_is_one_error(limited_app: LimitedApp) -> None:
    query = "{ __typename " + "@nope " * 10 + "}"
    async with limited_app() as limited:
        response = await limited.query(query)
    errors = response.json()["errors"]
    assert len(errors) == 1 and "@nope" in errors[0]["message"]
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert limited.resolved == []


async def test_a_repeated_non_repeatable_directive_is_refused_before_validation(limited_app: LimitedApp) -> None:
    query = "query($a: Boolean!) { __typename @skip(if: $a) @skip(if: $a) @skip(if: $a) }"
    async with limited_app() as limited:
        response = await limited.query(query, {"a": False})
    errors = response.json()["errors"]
    assert [e["message"] for e in errors] == [
        "The directive '@skip' is repeated on one location; it may appear there once."]


async def test_validation_answers_each_kind_of_error_once_and_ten_at_most(limited_app: LimitedApp) -> None:
    repeated = "{ " + " ".join(f"a{i}: nope" for i in range(12)) + " }"  # one kind, twelve times
    various = "{ " + " ".join(f"nope{i}" for i in range(15)) + " }"  # fifteen kinds
    async with limited_app() as limited:
        one = (await limited.query(repeated)).json()["errors"]
        ten = (await limited.query(various)).json()["errors"]
    assert len(one) == 1
    assert len(ten) == 10 and len({e["message"] for e in ten}) == 10
