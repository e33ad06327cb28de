"""The one REST error shape."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


def error_response(
    status: int, code: str, message: str, request_id: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details, "requestId": request_id}}
    return JSONResponse(body, status_code=status, headers=headers)
