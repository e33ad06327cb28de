"""Simulated editors for the convergence tests: Yjs clients (pycrdt) and index-edit clients, over real sockets.

Every editor inserts unique tokens like `[3.7]` only at token boundaries and deletes only its own
tokens, so after any interleaving the expected content is known up to order: every token inserted
and not deleted by its author appears exactly once, intact. Each editor also subscribes to
`documentEvents` and records the versions it receives, which must be 1, 2, 3, … without gaps.
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from gql.client import AsyncClientSession
from pycrdt import Doc, Text

from tests.realtime.conftest import post_gql, subscribe

EVENTS = "subscription($id: ID!) { documentEvents(documentId: $id, afterVersion: 0) { kind version update } }"
APPLY = """mutation($id: ID!, $u: Base64!) { applyDocumentUpdate(input: {documentId: $id, update: $u}) {
  version userErrors { message } } }"""
EDIT = """mutation($id: ID!, $edits: [TextEditInput!]!, $base: Int!) {
  editDocumentText(input: {documentId: $id, edits: $edits, baseVersion: $base}) { version userErrors { message } } }"""
CONTENT = "query($id: ID!) { document(id: $id) { content version } }"
TOKEN = re.compile(r"\[\d+\.\d+\]")


def boundaries(text: str) -> list[int]:
    return [0, *(match.end() for match in TOKEN.finditer(text))]


@dataclass
class Editor:
    number: int
    yjs: bool
    http: httpx.AsyncClient
    token: str
    document_id: str
    ws_url: str = ""
    doc: Doc[Any] = field(default_factory=Doc)
    versions: list[int] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    acknowledged: int = 0

    @property
    def text(self) -> str:
        return str(self.doc.get("content", type=Text))

    async def listen(self, session: AsyncClientSession, ready: asyncio.Event) -> None:
        async for result in subscribe(session, EVENTS, {"id": self.document_id}):
            event = result["documentEvents"]
            if event["kind"] == "JOINED" and not ready.is_set():
                ready.set()
            if event["kind"] == "UPDATE":
                self.doc.apply_update(base64.b64decode(event["update"]))
                self.versions.append(event["version"])

    async def _send_yjs(self, edit: Any) -> None:
        before = self.doc.get_state()
        edit(self.doc.get("content", type=Text))
        update = self.doc.get_update(before)
        body = await post_gql(self.http, self.token, APPLY, {"id": self.document_id, "u": base64.b64encode(update).decode()})
        assert body.get("data") and body["data"]["applyDocumentUpdate"]["userErrors"] == [], body
        self.acknowledged += 1

    async def _send_edit(self, index: int, delete: int, insert: str, base: int) -> None:
        edits = [{"index": index, "delete": delete, "insert": insert}]
        body = await post_gql(self.http, self.token, EDIT, {"id": self.document_id, "edits": edits, "base": base})
        assert body.get("data") and body["data"]["editDocumentText"]["userErrors"] == [], body
        self.acknowledged += 1

    async def insert(self, where: int) -> None:
        token = f"[{self.number}.{len(self.inserted)}]"
        self.inserted.append(token)
        if self.yjs:
            index = boundaries(self.text)[where % len(boundaries(self.text))]
            await self._send_yjs(lambda text: text.insert(index, token))  # ASCII: bytes == characters
            return
        content, version = await self.read()
        index = boundaries(content)[where % len(boundaries(content))]
        await self._send_edit(index, 0, token, version)

    async def delete_own(self, which: int) -> None:
        alive = [token for token in self.inserted if token not in self.deleted]
        if not alive:
            return
        token = alive[which % len(alive)]
        if self.yjs:
            start = self.text.find(token)
            if start < 0:
                return  # not arrived here yet
            self.deleted.append(token)

            def remove(text: Text) -> None:
                del text[start : start + len(token)]

            await self._send_yjs(remove)
            return
        content, version = await self.read()
        start = content.find(token)
        if start < 0:
            return
        self.deleted.append(token)
        await self._send_edit(start, len(token), "", version)

    async def read(self) -> tuple[str, int]:
        body = await post_gql(self.http, self.token, CONTENT, {"id": self.document_id})
        return body["data"]["document"]["content"], body["data"]["document"]["version"]
