from db.models import User
from tests.conftest import Gql, codes

UPDATE = "mutation($input: UpdateViewerInput!) { updateViewer(input: $input) { user { name email } userErrors { field code } } }"


async def test_update_name_and_email(gql: Gql, alice: User) -> None:
    body = await gql(UPDATE, {"input": {"name": "Alice B.", "email": "Alice@New.Example"}}, as_user=alice)
    assert body["data"]["updateViewer"] == {"user": {"name": "Alice B.", "email": "alice@new.example"}, "userErrors": []}


async def test_omitted_fields_stay(gql: Gql, alice: User) -> None:
    body = await gql(UPDATE, {"input": {"name": "A"}}, as_user=alice)
    assert body["data"]["updateViewer"]["user"] == {"name": "A", "email": alice.email}


async def test_taken_or_invalid_email_is_a_user_error(gql: Gql, alice: User, bob: User) -> None:
    for email in (bob.email, "not-an-email", ""):
        body = await gql(UPDATE, {"input": {"email": email}}, as_user=alice)
        assert body["data"]["updateViewer"]["userErrors"] == [{"field": "email", "code": "BAD_USER_INPUT"}]
    check = await gql("{ viewer { email } }", as_user=alice)
    assert check["data"]["viewer"]["email"] == alice.email


async def test_blank_or_long_name_is_a_user_error(gql: Gql, alice: User) -> None:
    for name in ("  ", "x" * 201, None):
        body = await gql(UPDATE, {"input": {"name": name}}, as_user=alice)
        assert body["data"]["updateViewer"]["userErrors"] == [{"field": "name", "code": "BAD_USER_INPUT"}]


async def test_anonymous_cannot_update(gql: Gql) -> None:
    assert codes(await gql(UPDATE, {"input": {"name": "x"}})) == ["UNAUTHENTICATED"]
