"""The events a source may send to `POST /webhooks/{source}`, as pydantic models.

They validate the body (strictly: no type coercion) and are the request schema in `/openapi.json`.
The envelope is the Standard Webhooks one, `{"type", "timestamp", "data"}`; `data` refers to
objects by the same global IDs that GraphQL uses.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

Status = Literal["TODO", "IN_PROGRESS", "DONE"]
Priority = Literal["LOW", "MEDIUM", "HIGH", "URGENT"]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64)]
GlobalId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Labels = Annotated[list[Label], Field(max_length=20)]


class _Data(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TaskCreateData(_Data):
    title: Title
    description: Description = ""
    status: Status = "TODO"
    priority: Priority = "MEDIUM"
    dueAt: AwareDatetime | None = None
    labels: Labels = Field(default_factory=list)
    assigneeId: GlobalId | None = None
    documentId: GlobalId | None = None


class TaskUpdateData(_Data):
    """Partial: fields left out stay as they are; `null` clears the nullable ones."""

    id: GlobalId
    title: Title | None = None
    description: Description | None = None
    status: Status | None = None
    priority: Priority | None = None
    dueAt: AwareDatetime | None = None
    labels: Labels | None = None
    assigneeId: GlobalId | None = None
    documentId: GlobalId | None = None


class TaskCloseData(_Data):
    id: GlobalId


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    timestamp: AwareDatetime | None = None


class TaskCreateEvent(_Event):
    type: Literal["task.create"]
    data: TaskCreateData


class TaskUpdateEvent(_Event):
    type: Literal["task.update"]
    data: TaskUpdateData


class TaskCloseEvent(_Event):
    type: Literal["task.close"]
    data: TaskCloseData


InboundEvent = Annotated[TaskCreateEvent | TaskUpdateEvent | TaskCloseEvent, Field(discriminator="type")]
inbound_event = TypeAdapter[TaskCreateEvent | TaskUpdateEvent | TaskCloseEvent](InboundEvent)


class Receipt(BaseModel):
    """The answer to a webhook: stored (202) or already stored earlier (200)."""

    id: str = Field(description="The `webhook-id` the sender chose.")
    status: Literal["accepted", "duplicate"]
