"""The one Strawberry schema: types, inputs, payloads and the error-shaping extension.

`build_schema()` assembles it; `app/` decides which extensions (limits, auth) run around it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from schema.documents import DocumentMutations
from schema.query import Query
from schema.tasks import TaskMutations
from schema.users import UserMutations


@strawberry.type
class Mutation(TaskMutations, DocumentMutations, UserMutations):
    pass


class TandemSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Strawberry would log every error, domain errors included; `schema.errors.ErrorCodes` logs the
        # unexpected ones, with the request id.
        return None


ExtensionFactory = type[SchemaExtension] | SchemaExtension | Callable[[], SchemaExtension]


def build_schema(extensions: Sequence[Any] = ()) -> TandemSchema:
    return TandemSchema(query=Query, mutation=Mutation, extensions=list(extensions))
