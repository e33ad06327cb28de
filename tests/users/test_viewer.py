from db.models import User
from tests.conftest import Gql, codes, global_id

VIEWER = "{ viewer { id name email } }"
USER = "query($id: ID!) { user(id: $id) { id name email } }"


async def test_anonymous_viewer_is_null(gql: Gql) -> None:
    body = await gql(VIEWER)
    assert body == {"data": {"viewer": None}}


async def test_viewer_sees_own_email(gql: Gql, alice: User) -> None:
    body = await gql(VIEWER, as_user=alice)
    assert body["data"]["viewer"] == {"id": global_id("User", alice.id), "name": "Alice", "email": alice.email}


async def test_other_users_email_is_hidden(gql: Gql, alice: User, bob: User) -> None:
    body = await gql(USER, {"id": global_id("User", bob.id)}, as_user=alice)
    assert body["data"]["user"] == {"id": global_id("User", bob.id), "name": "Bob", "email": None}


async def test_user_lookup_needs_sign_in(gql: Gql, bob: User) -> None:
    body = await gql(USER, {"id": global_id("User", bob.id)})
    assert codes(body) == ["UNAUTHENTICATED"]
