"""Index-based text edits for clients without Yjs, turned into CRDT operations.

Indices count Unicode code points (as Python strings do); pycrdt's `Text` counts UTF-8 bytes,
so each edit is converted on the way in. Edits apply in order: each index refers to the text as
left by the edits before it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pycrdt import Assoc, Doc, Text

from realtime.documents import TEXT


@dataclass(frozen=True, slots=True)
class TextEdit:
    index: int
    delete: int = 0
    insert: str = ""


class EditOutOfRange(Exception):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def apply_edits(doc: Doc[Any], edits: list[TextEdit]) -> bytes:
    """Apply `edits` to `doc` in one transaction and return them as one Yjs update.

    Raises `EditOutOfRange` (naming the edit) before changing anything if an edit does not fit.
    """
    text = str(doc.get(TEXT, type=Text))
    for position, edit in enumerate(edits):  # check first, against the text as it will be
        if edit.index < 0 or edit.delete < 0:
            raise EditOutOfRange(position, "`index` and `delete` must not be negative.")
        if edit.index + edit.delete > len(text):
            raise EditOutOfRange(
                position, f"The edit reaches character {edit.index + edit.delete}; the text has {len(text)}."
            )
        text = text[: edit.index] + edit.insert + text[edit.index + edit.delete :]
    before = doc.get_state()
    shared = doc.get(TEXT, type=Text)
    with doc.transaction():
        for edit in edits:
            current = str(shared)
            start = _byte_offset(current, edit.index)
            if edit.delete:
                end = _byte_offset(current, edit.index + edit.delete)
                del shared[start:end]
            if edit.insert:
                shared.insert(start, edit.insert)
    return doc.get_update(before)


def edits_between(old: str, new: str) -> list[TextEdit]:
    """Edits that turn `old` into `new`, touching as little as possible (so concurrent work elsewhere survives)."""
    edits: list[TextEdit] = []
    shift = 0
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.append(TextEdit(index=i1 + shift, delete=i2 - i1, insert=new[j1:j2]))
        shift += (j2 - j1) - (i2 - i1)
    return edits


def map_positions(doc: Doc[Any], later: list[bytes], positions: list[int]) -> list[int]:
    """Where `positions` (code points in `doc`'s text) are once the `later` updates are applied to it:
    each follows the character after it (a Yjs sticky index), so text inserted before it moves it on;
    the end of the text follows the last character. In an empty text there is nothing to follow."""
    shared = doc.get(TEXT, type=Text)
    text = str(shared)
    if not text:
        return [0 for _ in positions]
    stickies = []
    for position in positions:
        index = min(max(0, position), len(text))
        # Nothing comes after the end: stick to the character before it (pycrdt has no index there).
        assoc = Assoc.BEFORE if index == len(text) else Assoc.AFTER
        stickies.append(shared.sticky_index(_byte_offset(text, index), assoc))
    for update in later:
        doc.apply_update(update)
    encoded = str(shared).encode()
    return [len(encoded[: sticky.get_index()].decode(errors="ignore")) for sticky in stickies]
