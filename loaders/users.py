"""User reads, batched. Users are a team directory: any signed-in viewer may look one up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from sqlalchemy import select
from strawberry.dataloader import DataLoader

from db.models import User
from db.reads import Reads
from db.records import UserRecord
from loaders.batching import IDS, one_per_key

_BY_IDS = select(User.__table__).where(User.id.in_(IDS))


async def _users_by_ids(reads: Reads, ids: Sequence[int]) -> list[UserRecord | None]:
    return one_per_key(ids, await reads.lookup(_BY_IDS, {"ids": list(ids)}), lambda u: u.id)


async def read_user(reads: Reads, user_id: int) -> UserRecord | None:
    """One user, read right away instead of in the next batch: for the request's viewer, asked for
    alone before anything else runs, a batch would only wait turns of the event loop (three: ~15 µs of
    a signed-in request)."""
    (user,) = await _users_by_ids(reads, [user_id])
    return user


class UserLoaders:
    def __init__(self, reads: Reads, known: Mapping[int, UserRecord | None] | None = None) -> None:
        self.by_id = DataLoader[int, UserRecord | None](partial(_users_by_ids, reads))
        if known:
            self.by_id.prime_many(known)  # rows this request has already read (the viewer's)
