"""What one editor can make Tandem store: a document's size (its Yjs state and update log together),
its snapshots, and the documents and tasks a user owns. Past a limit a mutation answers a
`userErrors` entry with code LIMIT_EXCEEDED and stores nothing. Both databases."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

from app.settings import Settings
from db.models import User
from tests.conftest import global_id, serve
from tests.factories import make_document
from tests.realtime.test_content import APPLY, CONTENT, EDIT, SNAPSHOT, b64, yjs_insert

CREATE_DOCUMENT = "mutation($t: String!) { createDocument(input: {title: $t}) { document { id } userErrors { field code } } }"
CREATE_TASK = "mutation($t: String!) { createTask(input: {title: $t}) { task { id } userErrors { field code } } }"


async def _as(http: Any, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables},
                               headers={"Authorization": f"Bearer {token}"})
    body: dict[str, Any] = response.json()
    return body


async def test_a_document_cannot_grow_past_its_size_limit(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"max_document_bytes": 3_000})) as http:
        app = http._transport.app  # type: ignore[attr-defined]
        from tests.factories import make_user

        alice: User = await make_user(app.state.sessions, "Alice")
        token = app.state.tokens.issue_access_token(str(alice.id), {"documents:read", "documents:write"})
        document = await make_document(app.state.sessions, alice)
        doc_id = global_id("Document", document.id)
        client: Doc = Doc()
        accepted = 0
        while True:
            update = yjs_insert(client, 0, "x" * 400)
            payload = (await _as(http, token, APPLY, {"id": doc_id, "update": b64(update)}))["data"][
                "applyDocumentUpdate"]
            if payload["userErrors"]:
                break
            accepted += 1
            assert accepted < 20, "the limit never applied"
        assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [("update", "LIMIT_EXCEEDED")]
        assert "3000" in payload["userErrors"][0]["message"]
        content = (await _as(http, token, CONTENT, {"id": doc_id}))["data"]["document"]
        assert content["version"] == accepted and len(content["content"]) == 400 * accepted  # nothing half-stored
        # The plain-text edit API is held to the same limit.
        edited = (await _as(http, token, EDIT, {"id": doc_id, "base": accepted,
                                                "edits": [{"index": 0, "delete": 0, "insert": "y" * 900}]}))
        errors = edited["data"]["editDocumentText"]["userErrors"]
        assert [e["code"] for e in errors] == ["LIMIT_EXCEEDED"]


async def test_snapshots_documents_and_tasks_have_quotas(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_snapshots_per_document": 2, "max_documents_per_user": 2,
                                          "max_tasks_per_user": 2})
    async with serve(limited) as http:
        app = http._transport.app  # type: ignore[attr-defined]
        from tests.factories import make_user

        alice: User = await make_user(app.state.sessions, "Alice")
        bob: User = await make_user(app.state.sessions, "Bob")
        scopes = {"documents:read", "documents:write", "tasks:read", "tasks:write"}
        token = app.state.tokens.issue_access_token(str(alice.id), scopes)
        created = [(await _as(http, token, CREATE_DOCUMENT, {"t": f"Doc {n}"}))["data"]["createDocument"]
                   for n in range(3)]
        assert [c["userErrors"] for c in created[:2]] == [[], []]
        assert created[2] == {"document": None, "userErrors": [{"field": "title", "code": "LIMIT_EXCEEDED"}]}
        doc_id = created[0]["document"]["id"]
        snapshots = [(await _as(http, token, SNAPSHOT, {"id": doc_id, "label": f"v{n}"}))["data"][
            "createDocumentSnapshot"] for n in range(3)]
        assert [s["userErrors"] for s in snapshots[:2]] == [[], []]
        assert [e["code"] for e in snapshots[2]["userErrors"]] == ["LIMIT_EXCEEDED"] and snapshots[2]["snapshot"] is None
        tasks = [(await _as(http, token, CREATE_TASK, {"t": f"Task {n}"}))["data"]["createTask"] for n in range(3)]
        assert [t["userErrors"] for t in tasks[:2]] == [[], []]
        assert tasks[2] == {"task": None, "userErrors": [{"field": "title", "code": "LIMIT_EXCEEDED"}]}
        # Per user: Bob is not affected by Alice's quota.
        bob_token = app.state.tokens.issue_access_token(str(bob.id), scopes)
        assert (await _as(http, bob_token, CREATE_TASK, {"t": "Mine"}))["data"]["createTask"]["userErrors"] == []
