"""The GraphiQL explorer, served by Tandem itself.

Why not a CDN page: the explorer must work offline and under a strict Content-Security-Policy,
and a page that pulls scripts from a third party hands that party every token pasted into the
headers editor. So the browser bundles come from pinned npm packages (package.json and its lock
at the repo root, installed by `npm ci`), nothing third-party is committed, and the page itself
carries no inline script: the bootstrap is our own file, `app/static/tandem-graphiql.js`.

`graphiql_page()` is the HTML answered to a browser's `GET /graphql`; `graphiql_assets()` is
the mount that serves the allowlisted files it loads.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

GRAPHIQL_CSP = (
    "default-src 'none'; "
    # GraphiQL 3 needs neither 'unsafe-eval' nor 'unsafe-inline' (checked in headless Chromium
    # by tests/http/test_graphiql_browser.py).
    "script-src 'self'; "
    # Not 'unsafe-inline' for styles either. The one thing this blocks is the <style> that the
    # modal dialogs (settings, shortcuts) inject to lock page scrolling; the page never scrolls,
    # so all it costs is one console error when a dialog opens.
    "style-src 'self'; "
    # 'self' also covers ws:/wss: to the same host and port (CSP Level 3), which is all the
    # subscriptions transport needs; a bare `ws:` would allow any host.
    "connect-src 'self'; "
    "img-src 'self' data:; "
    # GraphiQL's stylesheet embeds its fonts as data: URIs.
    "font-src 'self' data:; "
    "frame-ancestors 'none'; "
    "base-uri 'none'; "
    "form-action 'self'"
)

_STATIC_DIR = Path(__file__).resolve().parent / "static"

_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"

# URL path under the mount → (path inside node_modules, content type). Nothing else is served:
# node_modules holds far more than the browser needs, and none of it should be reachable.
_VENDOR: dict[str, tuple[str, str]] = {
    "vendor/react.production.min.js": ("react/umd/react.production.min.js", _JS),
    "vendor/react-dom.production.min.js": ("react-dom/umd/react-dom.production.min.js", _JS),
    "vendor/graphiql.min.js": ("graphiql/graphiql.min.js", _JS),
    "vendor/graphiql.min.css": ("graphiql/graphiql.min.css", _CSS),
}

_VENDOR_CACHE = "public, max-age=86400"
# The bootstrap changes with our code, not with the lock: revalidate it (FileResponse sends an ETag).
_BOOTSTRAP_CACHE = "no-cache"


def node_modules_dir() -> Path:
    """The repository's `node_modules`, where `npm ci` puts the pinned GraphiQL bundles."""
    return Path(__file__).resolve().parent.parent / "node_modules"


def graphiql_page(
    endpoint: str = "/graphql", assets_prefix: str = "/graphiql", oauth_client_id: str | None = None
) -> HTMLResponse:
    """The GraphiQL HTML page, with `GRAPHIQL_CSP` as its Content-Security-Policy.

    `endpoint` and the OAuth client GraphiQL signs in with reach the bootstrap through `data-*`
    attributes on the root element, because the policy allows no inline script to hand them over.
    """
    endpoint_attr = html.escape(endpoint, quote=True)
    client_attr = html.escape(oauth_client_id or "", quote=True)
    prefix = html.escape(assets_prefix.rstrip("/"), quote=True)
    body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tandem GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{prefix}/vendor/graphiql.min.css">
<script src="{prefix}/vendor/react.production.min.js" defer></script>
<script src="{prefix}/vendor/react-dom.production.min.js" defer></script>
<script src="{prefix}/vendor/graphiql.min.js" defer></script>
<script src="{prefix}/tandem-graphiql.js" defer></script>
</head>
<body>
<header id="tandem-auth" hidden>
<span id="tandem-auth-status"></span>
<button type="button" id="tandem-sign-in" hidden>Sign in</button>
<button type="button" id="tandem-sign-out" hidden>Sign out</button>
</header>
<div id="graphiql" data-endpoint="{endpoint_attr}" data-oauth-client-id="{client_attr}">Loading GraphiQL…</div>
<noscript>GraphiQL needs JavaScript. The API itself answers POST {endpoint_attr}.</noscript>
</body>
</html>
"""
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": GRAPHIQL_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def graphiql_assets(node_modules: Path) -> Mount:
    """A mount at `/graphiql` serving only the files `graphiql_page()` loads; anything else is 404.

    A bundle missing from `node_modules` answers 503 with how to install it, not a 500.
    """
    routes = [
        Route(
            f"/{name}",
            _file_endpoint(node_modules / relative, media_type, _VENDOR_CACHE),
            methods=["GET", "HEAD"],
        )
        for name, (relative, media_type) in _VENDOR.items()
    ]
    routes.append(
        Route(
            "/tandem-graphiql.js",
            _file_endpoint(_STATIC_DIR / "tandem-graphiql.js", _JS, _BOOTSTRAP_CACHE),
            methods=["GET", "HEAD"],
        )
    )
    return Mount("/graphiql", routes=routes, name="graphiql")


def _file_endpoint(
    path: Path, media_type: str, cache_control: str
) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        # Checked per request, not at startup: `npm ci` may run after the server started, and
        # FileResponse would otherwise fail mid-response with a 500.
        if not path.is_file():  # noqa: ASYNC240 - one stat of a local file
            return PlainTextResponse(
                f"GraphiQL asset {path.name} is not installed. Run `npm ci` (or `make`) "
                "in the Tandem repository, then reload.",
                status_code=503,
                headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
            )
        return FileResponse(
            path,
            media_type=media_type,
            headers={"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"},
        )

    return serve
