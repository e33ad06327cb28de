"""The OpenAPI 3.1 description of Tandem's REST endpoints, built from declarations.

Each REST module declares its endpoints next to its handlers as `Operation`s (path, parameters,
request body, responses); `build_document()` turns a list of them into `/openapi.json`. Request
and response bodies are pydantic models (or plain JSON Schema dicts): the same models validate the
requests, so the description cannot drift from what the code accepts. Every status listed in
`errors` answers with the one REST error shape (`Error` below), and `idempotent=True` documents
the `Idempotency-Key` header and the answers that come with it. Declaring a new endpoint::

    OPERATIONS = [Operation("POST", "/oauth/revoke", "revokeToken", "Revoke a token (RFC 7009)",
                            tags=("oauth",), body=Body(RevokeForm, "application/x-www-form-urlencoded"),
                            responses=(Reply(200, "Revoked, or was never valid."),), errors=(400, 401))]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

JsonSchema = dict[str, Any]
REF = "#/components/schemas/{model}"

ERROR_SCHEMA: JsonSchema = {
    "type": "object",
    "description": "The one shape of every REST error.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "requestId"],
            "properties": {
                "code": {"type": "string", "description": "Stable, machine-readable, e.g. INVALID_SIGNATURE."},
                "message": {"type": "string", "description": "For people; may change."},
                "details": {"description": "More about the error (e.g. the invalid fields), or null."},
                "requestId": {"type": "string", "description": "Also in the X-Request-ID header and our logs."},
            },
        }
    },
}

SECURITY_SCHEMES: JsonSchema = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "An access token from the OAuth server (or `tandem token`)."},
}

IDEMPOTENCY_KEY_SCHEMA: JsonSchema = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"}


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    location: Literal["path", "query", "header"]
    schema: JsonSchema
    required: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class Body:
    schema: Any  # a pydantic model, any type pydantic can describe, or a JSON Schema dict
    media_type: str = "application/json"
    required: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    description: str
    schema: Any = None
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    tags: tuple[str, ...] = ()
    description: str = ""
    parameters: tuple[Param, ...] = ()
    body: Body | None = None
    responses: tuple[Reply, ...] = ()
    errors: tuple[int, ...] = ()
    security: tuple[str, ...] = ()  # names in SECURITY_SCHEMES; empty: no credentials needed
    idempotent: bool = False  # accepts an Idempotency-Key header (see rest/idempotency.py)


class _Schemas:
    """Turns bodies into JSON Schema, collecting named models under components/schemas."""

    def __init__(self) -> None:
        self.components: dict[str, JsonSchema] = {"Error": ERROR_SCHEMA}

    def of(self, source: Any, mode: Literal["validation", "serialization"]) -> JsonSchema:
        if isinstance(source, dict):
            return source
        schema = TypeAdapter(source).json_schema(ref_template=REF, mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            self._add(name, definition)
        title = schema.get("title")
        if isinstance(source, type) and title and schema.get("type") == "object":
            self._add(title, schema)
            return {"$ref": REF.format(model=title)}
        return schema

    def _add(self, name: str, schema: JsonSchema) -> None:
        known = self.components.setdefault(name, schema)
        if known != schema:
            raise ValueError(f"two different schemas are both named {name!r} in the OpenAPI document")


def _response(description: str, content: JsonSchema | None) -> JsonSchema:
    response: JsonSchema = {
        "description": description,
        "headers": {"X-Request-ID": {"description": "This request's id, as in our logs.", "required": True,
                                     "schema": {"type": "string"}}},
    }
    if content is not None:
        response["content"] = content
    return response


def _operation(op: Operation, schemas: _Schemas) -> JsonSchema:
    parameters = [
        {"name": p.name, "in": p.location, "required": True if p.location == "path" else p.required,
         "schema": p.schema, **({"description": p.description} if p.description else {})}
        for p in op.parameters
    ]
    errors = set(op.errors)
    if op.idempotent:
        parameters.append({
            "name": "Idempotency-Key", "in": "header", "required": False, "schema": IDEMPOTENCY_KEY_SCHEMA,
            "description": "Retry safely: the first response is stored for 24 hours and replayed for the same key.",
        })
        errors |= {400, 409, 422}
    result: JsonSchema = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        result["description"] = op.description
    if op.tags:
        result["tags"] = list(op.tags)
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        result["requestBody"] = {
            "required": op.body.required,
            "content": {op.body.media_type: {"schema": schemas.of(op.body.schema, "validation")}},
            **({"description": op.body.description} if op.body.description else {}),
        }
    responses: JsonSchema = {}
    for reply in op.responses:
        content = None
        if reply.schema is not None:
            content = {reply.media_type: {"schema": schemas.of(reply.schema, "serialization")}}
        responses[str(reply.status)] = _response(reply.description, content)
    error_content = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    for status in sorted(errors):
        responses.setdefault(str(status), _response(HTTPStatus(status).phrase, error_content))
    result["responses"] = responses
    result["security"] = [{name: []} for name in op.security]
    return result


def build_document(
    operations: Iterable[Operation], *, title: str = "Tandem REST API", version: str = "1", description: str = ""
) -> JsonSchema:
    """The OpenAPI 3.1 document for `operations`; `ValueError` for a path+method declared twice."""
    schemas = _Schemas()
    paths: dict[str, dict[str, JsonSchema]] = {}
    for op in operations:
        methods = paths.setdefault(op.path, {})
        method = op.method.lower()
        if method in methods:
            raise ValueError(f"{op.method} {op.path} is declared twice")
        methods[method] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, **({"description": description} if description else {})},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.components.items())), "securitySchemes": SECURITY_SCHEMES},
    }


def routes(document: JsonSchema) -> list[Route]:
    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document, headers={"Cache-Control": "no-cache"})

    return [Route("/openapi.json", openapi_json, methods=["GET"])]


OPERATIONS: Sequence[Operation] = [
    Operation("GET", "/openapi.json", "openapi", "This document", tags=("meta",),
              responses=(Reply(200, "The OpenAPI 3.1 description of the REST endpoints.", {"type": "object"}),)),
]
