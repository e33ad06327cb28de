"""Tandem's OAuth 2 authorization server, built on authlib's server components.

`server` adapts authlib's synchronous `AuthorizationServer` to Starlette and our async database;
`grants`, `exchange` and `endpoints` configure authlib's grants and endpoints; `routes` puts them on
HTTP, with the sign-in and consent pages from `pages` and `browser`.
"""
