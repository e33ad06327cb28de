"""Who is asking: signing keys and JWKS, JWT access tokens, passwords, request → `Viewer`, permissions.

The OAuth 2 authorization server that hands these tokens to clients builds on `auth.tokens`.
"""
