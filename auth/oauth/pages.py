"""The sign-in, consent and error pages of /oauth/authorize: plain server-rendered HTML forms.

They work without JavaScript and run none: the Content-Security-Policy allows our stylesheet and
nothing else. There is deliberately no `form-action` directive: after consent the browser follows a
redirect to the client's own site, which `form-action 'self'` would block.
"""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse, Response

from auth.scopes import DESCRIPTIONS

STYLESHEET = "/oauth/signin.css"
PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"

CSS = """
body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
main { max-width: 24rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0, 0, 0, .12); }
h1 { font-size: 1.3rem; margin-top: 0; }
label { display: block; margin: 1rem 0 .3rem; font-weight: 600; }
input[type=email], input[type=password] { width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }
button { margin-top: 1.2rem; padding: .55rem 1.2rem; font-size: 1rem; cursor: pointer; }
button.secondary { background: none; border: 1px solid #999; }
.error { background: #fdecea; color: #8a1c12; padding: .6rem .8rem; border-radius: 4px; }
.muted { color: #5c6370; font-size: .9rem; }
ul.scopes li { margin: .3rem 0; }
"""


def _page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    document = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · Tandem</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{STYLESHEET}">
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""
    return HTMLResponse(document, status_code=status, headers={
        "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store", **(headers or {}),
    })


def _error(message: str | None) -> str:
    return f'<p class="error" role="alert">{html.escape(message)}</p>\n' if message else ""


def login_page(
    *, client_name: str, csrf: str, error: str | None = None, username: str = "", status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    body = f"""<h1>Sign in to Tandem</h1>
<p class="muted">to continue to <strong>{html.escape(client_name)}</strong></p>
{_error(error)}<form method="post">
<input type="hidden" name="csrf_token" value="{html.escape(csrf)}">
<input type="hidden" name="action" value="login">
<label for="username">Email</label>
<input id="username" name="username" type="email" autocomplete="username" required value="{html.escape(username)}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>"""
    return _page("Sign in", body, status, headers)


def consent_page(
    *, client_name: str, user_name: str, user_email: str, scopes: list[str], csrf: str, error: str | None = None,
    status: int = 200,
) -> Response:
    items = "\n".join(
        f'<li><strong>{html.escape(scope)}</strong>: {html.escape(DESCRIPTIONS.get(scope, scope))}</li>'
        for scope in scopes
    ) or "<li>Nothing beyond knowing that you signed in</li>"
    body = f"""<h1>Allow {html.escape(client_name)}?</h1>
<p class="muted">Signed in as {html.escape(user_name)} ({html.escape(user_email)})</p>
{_error(error)}<p><strong>{html.escape(client_name)}</strong> asks to:</p>
<ul class="scopes">
{items}
</ul>
<form method="post">
<input type="hidden" name="csrf_token" value="{html.escape(csrf)}">
<input type="hidden" name="action" value="consent">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</form>
<form method="post">
<input type="hidden" name="csrf_token" value="{html.escape(csrf)}">
<input type="hidden" name="action" value="logout">
<button type="submit" class="secondary">Not you? Sign out</button>
</form>"""
    return _page("Allow access", body, status)


def error_page(title: str, message: str, status: int = 400) -> Response:
    body = (f"<h1>{html.escape(title)}</h1>\n{_error(message)}"
            '<p class="muted">Return to the application and try again.</p>')
    return _page(title, body, status)


def stylesheet() -> Response:
    return Response(CSS, media_type="text/css; charset=utf-8", headers={"Cache-Control": "public, max-age=3600"})
