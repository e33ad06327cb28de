"""User reads, batched. Users are a team directory: any signed-in viewer may look one up."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from db.engine import Sessions
from db.models import User
from loaders.batching import one_per_key, scalars


async def _users_by_ids(sessions: Sessions, ids: Sequence[int]) -> list[User | None]:
    return one_per_key(ids, await scalars(sessions, select(User).where(User.id.in_(ids))), lambda u: u.id)


class UserLoaders:
    def __init__(self, sessions: Sessions) -> None:
        self.by_id = DataLoader[int, User | None](partial(_users_by_ids, sessions))
