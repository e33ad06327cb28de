"""`QueryLimits`: the static limits, checked before graphql-core validates the document.

- tokens: graphql-core's parser stops after `max_tokens` tokens (and as many comments), so an
  oversized document is never even fully read;
- depth, aliases, directives and root fields: measured by `limits.shape` on the parsed document.

Order matters: a document that breaks a limit must not reach validation, whose overlapping-fields
rule alone can take a second on a 2,000-token document of conflicting aliases. A refusal sets the
request's errors in `on_validate`, before any later extension's hook, and Strawberry then skips its
own validation. An extension that validates while entering its hook (Strawberry's
`ValidationCache`) would get there first: do not combine them. A cache that only serves documents it
has seen validated (the persisted-queries document cache, by hash) is fine after this one. List
`QueryLimits` before `ParserCache`: its token limit applies while parsing.

With a document cache that leaves a per-document memo in `context.extras` (`document_memo`, the
key), a cached document's shape is measured once per operation name instead of on every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSyntaxError,
    Lexer,
    Source,
    TokenKind,
)
from strawberry.extensions import SchemaExtension

from limits.shape import Shape, measure, operations
from resolvers.errors import DomainError, QueryTooComplex, QueryTooDeep

# graphql-core's messages when the parser stops at its token or comment limit.
_TOKEN_LIMIT = re.compile(r"Document contains more than \d+ (tokens|comments)\. Parsing aborted\.")
# Counting tokens after the parser gave up only serves the error message: stop at some multiple.
_COUNT_UP_TO = 10
# Validation errors answered for one document, each a different one.
_MAX_ERRORS = 10



@dataclass(frozen=True, slots=True)
class StaticLimits:
    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2_000
    max_directives: int = 50
    max_root_fields: int = 20

    def violation(self, shape: Shape) -> GraphQLError | None:
        """The first limit the shape breaks, as the error the client will read."""
        if shape.depth > self.max_depth:
            return limit_error(QueryTooDeep, f"The query is nested {shape.depth} fields deep", self.max_depth,
                               shape.depth)
        checks = (
            ("aliases", shape.aliases, self.max_aliases),
            ("directives", shape.directives, self.max_directives),
            ("root fields", shape.root_fields, self.max_root_fields),
        )
        for what, found, limit in checks:
            if found > limit:
                return limit_error(QueryTooComplex, f"The query uses {found} {what}", limit, found)
        return None


def limit_error(kind: type[DomainError], text: str, limit: int, found: int | None) -> GraphQLError:
    """`<text>; the limit is <limit>.`, with `extensions.limit` and `extensions.found` for programs."""
    message = f"{text}; the limit is {limit}."
    return GraphQLError(message, original_error=kind(message), extensions={"limit": limit, "found": found})


class QueryLimitsConfig:
    """Built once per app; every request's `QueryLimits` shares it."""

    def __init__(self, limits: StaticLimits, *, document_memo: str | None = None) -> None:
        self.limits = limits
        self.document_memo = document_memo

    def shape(self, context: Any, document: DocumentNode, operation_name: str | None) -> Shape:
        """`measure`, once per operation of a cached document (its memo is in `context.extras`)."""
        memo = _memo(context, self.document_memo)
        if memo is None:
            return measure(document, operation_name)
        key = ("shape", operation_name)
        shape = memo.get(key)
        if isinstance(shape, Shape):
            return shape
        shape = measure(document, operation_name)
        if operation_name is None or operations(document, operation_name):
            memo[key] = shape  # only for names the document has: the client chooses the name
        return shape


class QueryLimits(SchemaExtension):
    def __init__(self, config: QueryLimitsConfig) -> None:
        super().__init__()
        self.config = config

    def on_operation(self) -> Iterator[None]:
        # Strawberry's ParseOptions type knows only `max_tokens`, which graphql-core deprecates.
        options = cast(dict[str, Any], self.execution_context.parse_options)
        options["max_lexical_tokens"] = self.config.limits.max_tokens
        options["max_comments"] = self.config.limits.max_tokens
        try:
            yield
        except GraphQLSyntaxError as error:
            # ParserCache parses while entering its own hook; its errors skip the other parse hooks.
            if (match := _TOKEN_LIMIT.search(error.message)) is None:
                raise
            raise self._too_many_tokens(match.group(1)) from None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        yield
        # Without ParserCache, Strawberry parses between the hooks and has already put the parser's
        # error in its result (a list of its own), so the error is rewritten in place.
        for parsed in context.pre_execution_errors or ():
            if isinstance(parsed, GraphQLSyntaxError) and (match := _TOKEN_LIMIT.search(parsed.message)):
                ours = self._too_many_tokens(match.group(1))
                parsed.message, parsed.extensions = ours.message, ours.extensions
                parsed.original_error = ours.original_error

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            shape = self.config.shape(context.context, document, context.operation_name)
            violation = self.config.limits.violation(shape) or _repeated_directive(context.schema, shape)
            if violation is not None:
                context.pre_execution_errors = [violation]  # Strawberry then skips validation
        yield
        if context.pre_execution_errors:
            # In place: Strawberry has already put this very list in the result it returns.
            context.pre_execution_errors[:] = _first_of_each_kind(context.pre_execution_errors)

    def _too_many_tokens(self, what: str) -> GraphQLError:
        limit = self.config.limits.max_tokens
        if what == "comments":
            return limit_error(QueryTooComplex, f"The query has more than {limit} comments", limit, None)
        cap = limit * _COUNT_UP_TO
        found = _count_tokens(self.execution_context.query or "", cap)
        if found > cap:
            return limit_error(QueryTooComplex, f"The query has more than {cap} tokens", limit, None)
        return limit_error(QueryTooComplex, f"The query has {found} tokens", limit, found)


def _repeated_directive(schema: Any, shape: Shape) -> GraphQLError | None:
    """One error for a directive repeated where it may appear once (validation would give one per copy)."""
    for name in sorted(shape.repeated_directives):
        directive = schema._schema.get_directive(name)
        if directive is None or not directive.is_repeatable:
            return GraphQLError(f"The directive '@{name}' is repeated on one location; it may appear there once.")
    return None


def _first_of_each_kind(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Validation errors with the same message (an unknown directive or field written many times)
    answered once, and at most `_MAX_ERRORS` in all: the answer must not grow with the attack."""
    kept: dict[str, GraphQLError] = {}
    for error in errors:
        kept.setdefault(error.message, error)
    return list(kept.values())[:_MAX_ERRORS]


def _memo(context: Any, key: str | None) -> dict[Any, object] | None:
    """The memo a document cache left for this request's document (`context.extras[key]`), if any."""
    extras = getattr(context, "extras", None)
    memo = extras.get(key) if key is not None and isinstance(extras, dict) else None
    return memo if isinstance(memo, dict) else None


def _count_tokens(query: str, up_to: int) -> int:
    """Lexical tokens in `query`, counting at most `up_to + 1`; invalid text ends the count."""
    lexer = Lexer(Source(query))
    count = 0
    try:
        while count <= up_to and lexer.advance().kind != TokenKind.EOF:
            count += 1
    except GraphQLSyntaxError:
        pass
    return count
