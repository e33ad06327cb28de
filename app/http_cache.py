"""HTTP caching for GraphQL GET responses, so a CDN or browser can keep query results.

Only GET reaches here (POST is never cached; GET never runs a mutation). A successful result of
an anonymous request is `public` for `max_age` seconds: with persisted queries the URL is short
and stable (`?extensions={"persistedQuery":…}` or `?documentId=sha256:…`), which makes it a good
cache key. Such an answer is stored for everyone, so it carries no caller's budget: the transport
leaves `extensions.cost.throttleStatus` and the `RateLimit` header fields out of it, and an answer
whose data is about the caller (`rateLimit`) is private. A result for a signed-in caller is
`private, no-cache`: only their own client may keep it, and it revalidates with
`If-None-Match`, which answers 304 without the body. Results with errors are never stored. `Vary`
names the headers that change the answer.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

VARY = "Accept, Authorization"


def shared_cacheable(*, anonymous: bool, has_errors: bool, per_caller: bool) -> bool:
    """Whether a GET answer will be `public` (before its status is known: a 429 is never stored)."""
    return anonymous and not has_errors and not per_caller


def cache_get_response(
    request: Request, response: Response, *, has_errors: bool, max_age: int, data: bytes, per_caller: bool,
) -> Response:
    """`data`: the serialized result data. The ETag covers it alone, since `extensions` (the caller's
    cost and remaining budget) differ on every response while the data may not."""
    if response.status_code != 200 or has_errors:
        response.headers["Cache-Control"] = "no-store"
        return response
    etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
    public = shared_cacheable(anonymous="authorization" not in request.headers, has_errors=has_errors,
                              per_caller=per_caller)
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={max_age}" if public else "private, no-cache",
        "Vary": VARY,
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison, a list of tags, or `*`."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags
