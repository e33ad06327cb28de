"""The `User` type, registration, and the viewer's own profile and password mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types import Info

import auth.accounts
import resolvers.documents
import resolvers.tasks
import resolvers.users
from auth import scopes
from auth.permissions import HasScope
from db.records import UserRecord as UserRow  # row types: Strawberry resolves Private[...] too
from resolvers.context import Context
from resolvers.errors import BadUserInput
from schema.directives import CONNECTION
from schema.errors import UserError
from schema.inputs import page_args, task_query
from schema.lazy import DocumentType, TaskFilterType, TaskOrderType, TaskType
from schema.lookahead import task_relations
from schema.memo import once
from schema.relay import Connection, Node, connection, encode_id


@strawberry.type
class User(Node):
    id: strawberry.ID
    name: str
    created_at: datetime
    _pk: strawberry.Private[int]
    _email: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, row: UserRow, *, show_email: bool = False) -> User:
        return cls(
            id=encode_id("User", row.id), name=row.name, created_at=row.created_at,
            _pk=row.id, _email=row.email if show_email else None,
        )

    @strawberry.field(description="Only visible to the user themself (and admins).")
    def email(self) -> str | None:
        return self._email

    @strawberry.field(
        description="Tasks this user owns or is assigned to, as far as you may see them.",
        extensions=[PermissionExtension([HasScope(scopes.TASKS_READ)])],
        directives=[CONNECTION],
    )
    async def tasks(
        self, info: Info[Context, Any],
        first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
        filter: TaskFilterType | None = None, order_by: TaskOrderType | None = None,
    ) -> Connection[TaskType]:
        from schema.tasks import Task

        f, order = task_query(filter, order_by)
        relations = task_relations(info)
        page = await resolvers.tasks.user_tasks(
            info.context, self._pk, f, order, page_args(first, after, last, before), relations
        )
        return connection(page, Task.listed(info.context, relations))

    @strawberry.field(
        description="Documents this user collaborates on, as far as you may see them.",
        extensions=[PermissionExtension([HasScope(scopes.DOCUMENTS_READ)])],
        directives=[CONNECTION],
    )
    async def documents(
        self, info: Info[Context, Any],
        first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
    ) -> Connection[DocumentType]:
        from schema.documents import Document

        page = await resolvers.documents.user_documents(info.context, self._pk, page_args(first, after, last, before))
        return connection(page, Document.from_row)


def user_type(ctx: Context, row: UserRow) -> User:
    return once(ctx, "User", row, lambda: User.from_row(row, show_email=resolvers.users.can_see_email(ctx, row)))


@strawberry.input
class UpdateViewerInput:
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET


@strawberry.type
class UpdateViewerPayload:
    user: User | None
    user_errors: list[UserError]


@strawberry.type
class UserMutations:
    @strawberry.mutation(extensions=[PermissionExtension([HasScope(scopes.PROFILE)])])
    async def update_viewer(self, info: Info[Context, Any], input: UpdateViewerInput) -> UpdateViewerPayload:
        changes = {k: v for k, v in (("name", input.name), ("email", input.email)) if v is not strawberry.UNSET}
        try:
            row = await resolvers.users.update_viewer(info.context, changes)
        except BadUserInput as exc:
            return UpdateViewerPayload(user=None, user_errors=[UserError.from_exception(exc)])
        return UpdateViewerPayload(user=user_type(info.context, row), user_errors=[])


@strawberry.input
class RegisterInput:
    email: str
    name: str
    password: str


REGISTERED = "If this address had no account, it has one now: sign in with it."


@strawberry.type
class RegisterPayload:
    user: User | None = strawberry.field(deprecation_reason=(
        "Always null: `register` answers the same whether or not the address already had an account, "
        "so it cannot be used to find out who has one. Sign in to read your account."))
    user_errors: list[UserError]
    message: str | None = strawberry.field(
        default=None, description="What happened, in words the same for a new and a taken address.")


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.type
class ChangePasswordPayload:
    user: User | None
    user_errors: list[UserError]


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="Create an account with email and password; then sign in through OAuth.")
    async def register(self, info: Info[Context, Any], input: RegisterInput) -> RegisterPayload:
        try:
            await auth.accounts.register(info.context, email=input.email, name=input.name, password=input.password)
        except BadUserInput as exc:
            return RegisterPayload(user=None, user_errors=[UserError.from_exception(exc)])
        return RegisterPayload(user=None, user_errors=[], message=REGISTERED)

    @strawberry.mutation(
        description="Change your password; every other session is signed out (its refresh tokens stop working).",
        extensions=[PermissionExtension([HasScope(scopes.PROFILE)])],
    )
    async def change_password(self, info: Info[Context, Any], input: ChangePasswordInput) -> ChangePasswordPayload:
        try:
            row = await auth.accounts.change_password(info.context, input.current_password, input.new_password)
        except BadUserInput as exc:
            return ChangePasswordPayload(user=None, user_errors=[UserError.from_exception(exc)])
        return ChangePasswordPayload(user=user_type(info.context, row), user_errors=[])
