"""The cost directives (IBM's GraphQL Cost Directives specification), printed in the SDL.

They carry no behaviour here: `limits/cost_model.py` reads them from the schema to price queries,
and clients can read them from `schema.graphql` to price their queries the same way. What a field
without them costs, and how sizes multiply, is in the README ("Rate limits and query cost").
"""

from __future__ import annotations

import strawberry
from strawberry.schema_directive import Location


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION, Location.OBJECT],
    name="cost",
    description="What each value of this field (or every field returning this type) costs.",
)
class Cost:
    weight: str  # a decimal number, as a string per the specification


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="listSize",
    description="How many items a list or connection field returns, for pricing.",
)
class ListSize:
    # UNSET: left out of the SDL where not given, as the specification writes them.
    assumed_size: int | None = strawberry.UNSET
    slicing_arguments: list[str] | None = strawberry.UNSET
    sized_fields: list[str] | None = strawberry.UNSET
    require_one_slicing_argument: bool = True


FREE = Cost(weight="0")

# Cursor connections: `first`/`last` (default page size 20) size their `edges` and `nodes`.
CONNECTION = ListSize(
    assumed_size=20, slicing_arguments=["first", "last"], sized_fields=["edges", "nodes"],
    require_one_slicing_argument=False,
)
