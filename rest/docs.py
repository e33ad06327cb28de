"""`/docs`: the REST API's OpenAPI description rendered by Swagger UI, served entirely by us.

Like GraphiQL (`app/graphiql.py`) and for the same reasons: it works offline, under a strict
Content-Security-Policy with no inline script or style, and nothing third-party is committed. The
bundle comes from the pinned `swagger-ui-dist` npm package (package.json + lock, `npm ci`); only
the two files the page loads are served from node_modules, plus our bootstrap in rest/static/.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    # Swagger UI sets element styles from script (allowed: CSSOM is not inline style markup).
    "style-src 'self'; "
    "connect-src 'self'; "  # fetches /openapi.json, and "Try it out" calls this server only
    "img-src 'self' data:; "
    "font-src 'self' data:; "
    "frame-ancestors 'none'; "
    "base-uri 'none'; "
    "form-action 'none'"
)

_STATIC_DIR = Path(__file__).resolve().parent / "static"
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
_VENDOR: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui-dist/swagger-ui-bundle.js", _JS),
    "swagger-ui.css": ("swagger-ui-dist/swagger-ui.css", _CSS),
}
_VENDOR_CACHE = "public, max-age=86400"
_BOOTSTRAP_CACHE = "no-cache"


def docs_page(spec_url: str = "/openapi.json", assets_prefix: str = "/docs/assets") -> HTMLResponse:
    spec = html.escape(spec_url, quote=True)
    prefix = html.escape(assets_prefix.rstrip("/"), quote=True)
    body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tandem REST API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{prefix}/swagger-ui.css">
<script src="{prefix}/swagger-ui-bundle.js" defer></script>
<script src="{prefix}/tandem-docs.js" defer></script>
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}">Loading the API description…</div>
<noscript>The description itself is at <a href="{spec}">{spec}</a>.</noscript>
</body>
</html>
"""
    return HTMLResponse(body, headers={
        "Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache",
    })


def _file_endpoint(path: Path, media_type: str, cache_control: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        # Checked per request: `npm ci` may run after the server started.
        if not path.is_file():  # noqa: ASYNC240 - one stat of a local file
            return PlainTextResponse(
                f"API docs asset {path.name} is not installed. Run `npm ci` (or `make`) in the Tandem "
                "repository, then reload. The description itself is at /openapi.json.",
                status_code=503, headers={"Cache-Control": "no-store"},
            )
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": cache_control})

    return serve


def routes(node_modules: Path) -> list[BaseRoute]:
    """`/docs` and a mount at `/docs/assets` serving only what the page loads (anything else: 404)."""

    async def page(request: Request) -> Response:
        return docs_page()

    assets = [
        Route(f"/{name}", _file_endpoint(node_modules / relative, media_type, _VENDOR_CACHE), methods=["GET", "HEAD"])
        for name, (relative, media_type) in _VENDOR.items()
    ]
    assets.append(Route("/tandem-docs.js", _file_endpoint(_STATIC_DIR / "tandem-docs.js", _JS, _BOOTSTRAP_CACHE),
                        methods=["GET", "HEAD"]))
    return [Route("/docs", page, methods=["GET"]), Mount("/docs/assets", routes=assets)]
