import pytest


@pytest.mark.gen_test
async def test_register_create_send_read(make_user):
    alice = await make_user()
    created = await alice.post("/api/chats", {"title": "hello"})
    assert created.code == 201
    chat_id = created.json()["id"]
    assert (await alice.post(f"/api/chats/{chat_id}", {"content": "hi"})).code == 201
    history = (await alice.get(f"/api/chats/{chat_id}")).json()["messages"]
    assert [m["content"] for m in history] == ["hi"]
