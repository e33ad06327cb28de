"""`POST /auth/ws-ticket`: trade the bearer token for a single-use, 30-second WebSocket ticket."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.tokens import InvalidToken, TokenService
from auth.viewer import bearer_token
from auth.ws_tickets import TicketStore
from resolvers.errors import Unauthenticated
from rest.errors import error_response


def routes(tokens: TokenService, tickets: TicketStore, ttl_seconds: int, request_id: Callable[[], str]) -> list[Route]:
    async def ws_ticket(request: Request) -> Response:
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        try:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise Unauthenticated("Send the access token as `Authorization: Bearer <token>`.")
            tokens.verify(token)
        except (Unauthenticated, InvalidToken) as exc:
            return error_response(401, "UNAUTHENTICATED", str(exc), request_id(), headers=challenge)
        ticket = await tickets.issue(token)
        return JSONResponse(
            {"ticket": ticket, "expiresIn": ttl_seconds},
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    return [Route("/auth/ws-ticket", ws_ticket, methods=["POST"])]
