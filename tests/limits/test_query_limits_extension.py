"""`QueryLimits` on a schema without `ParserCache`: Strawberry then parses between the hooks and
keeps the parser's error, which must come out the same as through the cache (see test_static_limits)."""

from __future__ import annotations

from limits.query_limits import QueryLimits, QueryLimitsConfig, StaticLimits
from resolvers.context import Context
from schema import build_schema


async def test_token_limit_without_parser_cache() -> None:
    config = QueryLimitsConfig(StaticLimits(max_tokens=10))
    schema = build_schema(extensions=[lambda: QueryLimits(config)])
    result = await schema.execute("{ " + "__typename " * 12 + "}",  # 14 tokens
                                  context_value=Context(None, None, None, "test-request"))  # type: ignore[arg-type]
    assert result.data is None and result.errors
    [error] = result.errors
    assert error.extensions == {"limit": 10, "found": 14, "code": "QUERY_TOO_COMPLEX", "requestId": "test-request"}
    assert error.message == "The query has 14 tokens; the limit is 10."


async def test_depth_limit_without_parser_cache() -> None:
    schema = build_schema(extensions=[lambda: QueryLimits(QueryLimitsConfig(StaticLimits(max_depth=1)))])
    result = await schema.execute("{ viewer { name } }")
    assert result.errors and result.errors[0].extensions
    assert result.errors[0].extensions["code"] == "QUERY_TOO_DEEP"


async def test_without_its_own_cache_validation_is_left_to_strawberry() -> None:
    schema = build_schema(extensions=[lambda: QueryLimits(QueryLimitsConfig(StaticLimits()))])
    result = await schema.execute("{ viewer { shoeSize } }")
    assert result.errors and "shoeSize" in result.errors[0].message
