"""`POST /webhooks/{source}`: inbound webhooks from configured sources (Standard Webhooks).

The answer comes as soon as the event is stored: 202 for a new `webhook-id`, 200 for one we
already have (a replay is acknowledged, never applied twice); the event is applied afterwards by
the background worker (`rest.inbound_processing`). Checks run cheapest-first and nothing is
parsed before the signature verifies:

    404 NOT_FOUND                   no such source
    415 UNSUPPORTED_MEDIA_TYPE      not application/json
    413 PAYLOAD_TOO_LARGE           over TANDEM_WEBHOOK_MAX_BODY_BYTES
    400 BAD_REQUEST                 webhook-id / webhook-timestamp / webhook-signature missing or malformed
    401 TIMESTAMP_OUT_OF_TOLERANCE  more than 5 minutes away from our clock (either way)
    401 INVALID_SIGNATURE           no configured secret signed this body
    422 INVALID_PAYLOAD             signed, but not an event we understand
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db import request_transaction
from db.engine import Sessions
from db.upsert import insert_or_ignore
from db.webhooks import InboundWebhook
from rest.errors import error_response
from rest.inbound_events import InboundEvent, Receipt, inbound_event
from rest.openapi import Body, Operation, Param, Reply
from rest.request_ids import request_id_of
from rest.signing import TOLERANCE_SECONDS, verifies
from rest.webhook_sources import SOURCE_NAME, WebhookSource

_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,255}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE_MAX = 4096


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def _bounded_body(request: Request, limit: int) -> bytes:
    too_large = _Refused(413, "PAYLOAD_TOO_LARGE", f"The body is larger than {limit} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _check_headers(request: Request) -> dict[str, str]:
    message_id = request.headers.get("webhook-id", "")
    timestamp = request.headers.get("webhook-timestamp", "")
    signature = request.headers.get("webhook-signature", "")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise _Refused(400, "BAD_REQUEST", "`webhook-id` must be 1 to 255 visible ASCII characters.")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise _Refused(400, "BAD_REQUEST", "`webhook-timestamp` must be Unix seconds.")
    if not signature or len(signature) > _SIGNATURE_MAX:
        raise _Refused(400, "BAD_REQUEST", "`webhook-signature` is missing or too long.")
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        raise _Refused(401, "TIMESTAMP_OUT_OF_TOLERANCE",
                       "`webhook-timestamp` is more than 5 minutes away from now; sign each attempt afresh.")
    return {"webhook-id": message_id, "webhook-timestamp": timestamp, "webhook-signature": signature}


def _is_json(request: Request) -> bool:
    mime = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return mime == "application/json"


def routes(
    sources: dict[str, WebhookSource], sessions: Sessions, *, max_body_bytes: int, wake: Callable[[], None]
) -> list[Route]:
    async def receive(request: Request) -> Response:
        request_id = request_id_of(request)
        try:
            name = request.path_params["source"]
            source = sources.get(name)
            if source is None:
                raise _Refused(404, "NOT_FOUND", "No webhook source has this name.")
            if not _is_json(request):
                raise _Refused(415, "UNSUPPORTED_MEDIA_TYPE", "Send the event as `Content-Type: application/json`.")
            body = await _bounded_body(request, max_body_bytes)
            headers = _check_headers(request)
            if not verifies(source.secrets, body, headers):
                raise _Refused(401, "INVALID_SIGNATURE", "No configured secret signed this message.")
            try:
                event = inbound_event.validate_json(body)
            except ValidationError as exc:
                details = [{"field": ".".join(map(str, error["loc"])), "message": error["msg"]}
                           for error in exc.errors(include_url=False, include_input=False)[:20]]
                return error_response(422, "INVALID_PAYLOAD", "The body is not an event this source may send.",
                                      request_id, details)
        except _Refused as refused:
            return error_response(refused.status, refused.code, refused.message, request_id)

        async with sessions.begin() as session:
            stored = await insert_or_ignore(session, InboundWebhook, {
                "source": source.name, "message_id": headers["webhook-id"], "type": event.type,
                "payload": body.decode(),
            })
        if stored and not request_transaction.after_commit(_async(wake)):
            wake()  # no request transaction: the receipt is committed already
        receipt = Receipt(id=headers["webhook-id"], status="accepted" if stored else "duplicate")
        return JSONResponse(receipt.model_dump(), status_code=202 if stored else 200)

    return [Route("/webhooks/{source}", receive, methods=["POST"])]


def _async(call: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        call()

    return run


OPERATIONS = [
    Operation(
        "POST", "/webhooks/{source}", "receiveWebhook", "Receive an event from a configured source",
        tags=("webhooks",),
        description=(
            "Standard Webhooks: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` with one of the "
            "source's secrets. Answered once the event is stored (202), before it is applied; a `webhook-id` "
            "seen before is acknowledged with 200 and not applied again."
        ),
        parameters=(
            Param("source", "path", {"type": "string", "pattern": SOURCE_NAME}, description="The source's name."),
            Param("webhook-id", "header", {"type": "string", "minLength": 1, "maxLength": 255,
                                           "pattern": r"^[\x21-\x7e]+$"}),
            Param("webhook-timestamp", "header", {"type": "string", "pattern": r"^[0-9]{1,12}$"},
                  description="Unix seconds; at most 5 minutes from now."),
            Param("webhook-signature", "header", {"type": "string", "minLength": 1, "maxLength": _SIGNATURE_MAX},
                  description="Space-separated `v1,<base64>` signatures."),
        ),
        body=Body(InboundEvent),
        responses=(
            Reply(202, "Stored; it will be applied shortly.", Receipt),
            Reply(200, "Already stored earlier; not applied again.", Receipt),
        ),
        errors=(400, 401, 404, 413, 415, 422),
        idempotent=True,
    ),
]
