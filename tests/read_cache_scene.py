"""The world the read-cache tests read: a small model of the chats, the users
who write through it and read, and what each of them must see (test_read_cache.py)."""

import asyncio
import dataclasses
import time

from server.settings import Settings

from .api_helpers import assert_error, assert_ok
from .apiclient import ApiClient, unique_name
from .wsclient import answer, open_socket

DEFAULT_LIMIT = Settings.history_default_limit
LIMITS = (None, 20, 100)  # each history read: the default page, a smaller one, 100 given explicitly
SCENE_MESSAGES = 24  # more than the smaller page holds
POLL_SECS, POLL_EVERY_SECS = 5.0, 0.02  # how long another process may take to show a change

# A model of what the server holds, from which what each user reads follows.


@dataclasses.dataclass
class Message:
    id: int
    sender: int
    content: str
    edited: bool = False


@dataclasses.dataclass
class Chat:
    id: int
    title: str
    owner: int
    members: list[int]  # in join order
    markers: dict[int, int]  # read markers by member
    messages: list[Message] = dataclasses.field(default_factory=list)
    seq: int = 0

    def summary(self, user_id: int) -> dict:
        """The fields of the user's GET /api/chats entry that the tests compare."""
        newest = self.messages[-1] if self.messages else None
        marker = self.markers[user_id]
        return {
            "title": self.title, "owner_id": self.owner, "seq": self.seq,
            "last_message": newest and newest.content, "last_message_id": newest and newest.id,
            "sender_id": newest and newest.sender, "edited": bool(newest and newest.edited),
            "last_read_id": marker, "unread_count": sum(m.id > marker and m.sender != user_id for m in self.messages),
        }  # fmt: skip

    def rows(self) -> list[tuple]:
        """Every message as `row` shows it, oldest first."""
        return [(m.id, m.sender, m.content, m.edited) for m in self.messages]


class World:
    """The chats a test made and the accounts it deleted."""

    def __init__(self):
        self.chats: dict[int, Chat] = {}
        self.deleted: set[int] = set()

    def view(self, user_id: int, chat_ids) -> dict:
        """What `read_view` must find for the user."""
        if user_id in self.deleted:
            return {"chats": 401} | {page_key(c, limit): 401 for c in chat_ids for limit in LIMITS}
        view = {"chats": {c.id: c.summary(user_id) for c in self.chats.values() if user_id in c.members}}
        for chat_id in chat_ids:
            chat = self.chats[chat_id]
            for limit in LIMITS:
                view[page_key(chat_id, limit)] = chat.rows()[-(limit or DEFAULT_LIMIT) :] if user_id in chat.members else 403
        return view

    def removed(self, chat_id: int, user_id: int) -> None:
        chat = self.chats[chat_id]
        chat.members.remove(user_id)
        del chat.markers[user_id]
        chat.seq += 1
        if chat.owner == user_id:
            chat.owner = chat.members[0]  # the earliest joiner (no test empties a chat)


def page_key(chat_id: int, limit: int | None) -> str:
    return f"chat {chat_id} limit={limit}"


def row(message: dict) -> tuple:
    return message["id"], message["sender_id"], message["content"], "edited_at" in message


def summarize(chat: dict) -> dict:
    fields = ("title", "owner_id", "seq", "last_message", "last_message_id", "sender_id", "last_read_id", "unread_count")
    return {k: chat[k] for k in fields} | {"edited": chat["last_message_edited_at"] is not None}


def error_status(response) -> int:
    assert response.code != 200, f"expected an error, got the answer: {response}"
    assert_error(response, response.code)
    return response.code


async def read_page(client, chat_id: int, **params) -> list[tuple] | int:
    response = await client.get(f"/api/chats/{chat_id}", params={k: v for k, v in params.items() if v} or None)
    return [row(m) for m in response.json()["messages"]] if response.code == 200 else error_status(response)


async def read_list(client) -> list[dict] | int:
    """The chat list, checked to be in the documented order (newest activity first, ties by id)."""
    response = await client.get("/api/chats")
    if response.code != 200:
        return error_status(response)
    chats = response.json()["chats"]
    activity = [(c["last_message_time"] or c["created_at"], c["id"]) for c in chats]
    assert activity == sorted(activity, reverse=True), f"not newest activity first: {activity}"
    return chats


async def read_view(client, chat_ids) -> dict:
    """The user's chat list and each chat's pages, as World.view shows them."""
    chats = await read_list(client)
    view = {"chats": chats if isinstance(chats, int) else {c["id"]: summarize(c) for c in chats}}
    for chat_id in chat_ids:
        for limit in LIMITS:
            view[page_key(chat_id, limit)] = await read_page(client, chat_id, limit=limit)
    return view


# Users, their writes (each also made in the model) and their reads.


class Person:
    """A user: the client that writes, and on each process one that only reads
    (with its own copy of the cookies: a deleted account's reads still send them)."""

    def __init__(self, name: str, http_client, client: ApiClient):
        self.name, self.id, self.client = name, client.user_id, client
        self._http, self._readers = http_client, {}

    def reader(self, base: str) -> ApiClient:
        if base not in self._readers:
            self._readers[base] = ApiClient(self._http, base)
            self._readers[base].cookies = dict(self.client.cookies)
        return self._readers[base]


class Scene:
    """alice owns a chat with bob and carol (SCENE_MESSAGES messages, alice and
    bob in turn); dave is in no chat. Everyone writes through `base`."""

    def __init__(self, base: str, people: list[Person]):
        self.base, self.people, self.world = base, people, World()
        self.alice, self.bob, self.carol, self.dave = people

    @classmethod
    async def build(cls, http_client, base: str) -> "Scene":
        people = []
        for name in ("alice", "bob", "carol", "dave"):
            client = ApiClient(http_client, base)
            assert (await client.register(unique_name(name))).code == 201
            people.append(Person(name, http_client, client))
        scene = cls(base, people)
        scene.chat = await scene.create(scene.alice, "the scene")
        await scene.add(scene.alice, scene.chat, scene.bob)
        await scene.add(scene.alice, scene.chat, scene.carol)
        for n in range(1, SCENE_MESSAGES + 1):
            await scene.send(scene.alice if n % 2 else scene.bob, scene.chat, f"m{n}")
        return scene

    def message(self, chat_id: int, index: int) -> Message:
        return self.world.chats[chat_id].messages[index]

    def expected(self, chat_ids=None) -> dict[str, dict]:
        chat_ids = list(self.world.chats) if chat_ids is None else chat_ids
        return {p.name: self.world.view(p.id, chat_ids) for p in self.people}

    async def views(self, base: str) -> dict[str, dict]:
        return {p.name: await read_view(p.reader(base), list(self.world.chats)) for p in self.people}

    async def create(self, person: Person, title: str) -> int:
        chat_id = assert_ok(await person.client.post("/api/chats", {"title": title}), 201)["id"]
        self.world.chats[chat_id] = Chat(chat_id, title, person.id, [person.id], {person.id: 0})
        return chat_id

    async def add(self, by: Person, chat_id: int, person: Person) -> None:
        assert_ok(await by.client.post(f"/api/chats/{chat_id}/members", {"user_id": person.id}), 201)
        chat = self.world.chats[chat_id]
        chat.members.append(person.id)
        chat.markers[person.id] = chat.messages[-1].id if chat.messages else 0  # joining reads what was said
        chat.seq += 1

    async def send(self, person: Person, chat_id: int, content: str) -> int:
        message_id = assert_ok(await person.client.post(f"/api/chats/{chat_id}", {"content": content}), 201)["id"]
        self._sent(person, chat_id, message_id, content)
        return message_id

    async def send_over_socket(self, person: Person, chat_id: int, content: str) -> int:
        socket = await open_socket(self.base, person.client.cookies)
        try:
            ack = await answer(socket, {"op": "send", "chat_id": chat_id, "content": content, "request_id": "rc"})
        finally:
            socket.close()
        assert (ack["type"], ack["chat_id"]) == ("ack", chat_id), ack
        self._sent(person, chat_id, ack["message_id"], content)
        return ack["message_id"]

    def _sent(self, person: Person, chat_id: int, message_id: int, content: str) -> None:
        chat = self.world.chats[chat_id]
        chat.messages.append(Message(message_id, person.id, content))
        chat.markers[person.id] = message_id  # sending reads everything before it
        chat.seq += 1

    async def edit(self, person: Person, chat_id: int, message: Message, content: str) -> None:
        assert_ok(await person.client.put(f"/api/chats/{chat_id}/messages/{message.id}", {"content": content}))
        message.content, message.edited = content, True
        self.world.chats[chat_id].seq += 1

    async def delete(self, person: Person, chat_id: int, message: Message, *, by_path: bool) -> None:
        if by_path:
            assert_ok(await person.client.delete(f"/api/chats/{chat_id}/messages/{message.id}"))
        else:
            assert_ok(await person.client.delete(f"/api/chats/{chat_id}", {"id": message.id}))
        chat = self.world.chats[chat_id]
        chat.messages.remove(message)
        chat.seq += 1

    async def rename(self, person: Person, chat_id: int, title: str) -> None:
        assert_ok(await person.client.put(f"/api/chats/{chat_id}", {"title": title}))
        self.world.chats[chat_id].title = title
        self.world.chats[chat_id].seq += 1

    async def remove(self, owner: Person, chat_id: int, person: Person) -> None:
        assert_ok(await owner.client.delete(f"/api/chats/{chat_id}/members", {"user_id": person.id}))
        self.world.removed(chat_id, person.id)

    async def leave(self, person: Person, chat_id: int) -> None:
        assert_ok(await person.client.delete("/api/chats", {"chat_id": chat_id}))
        self.world.removed(chat_id, person.id)

    async def delete_account(self, person: Person) -> None:
        assert_ok(await person.client.delete(f"/api/user/{person.id}"))
        for chat in list(self.world.chats.values()):
            if person.id in chat.members:
                self.world.removed(chat.id, person.id)
        self.world.deleted.add(person.id)

    async def read(self, person: Person, chat_id: int, message_id: int) -> None:
        assert_ok(await person.client.post(f"/api/chats/{chat_id}/read", {"message_id": message_id}))
        markers = self.world.chats[chat_id].markers
        markers[person.id] = max(markers[person.id], message_id)


async def warm(scene: Scene, bases: list[str]) -> dict[str, dict]:
    """Reads everything on each process, checking each answer, until a whole
    round comes from its read cache (a cache fills on a read after the first,
    once its subscriptions are confirmed; without one: three rounds).
    Returns what was read."""
    expected = scene.expected()
    answered = sum(not isinstance(answer, int) for view in expected.values() for answer in view.values())
    for base in bases:
        deadline, rounds = time.monotonic() + POLL_SECS, 0
        while True:
            hits = await cache_hits(scene.alice.reader(base))
            assert_views(await scene.views(base), expected, f"read {rounds + 1} before the write on {base}")
            rounds += 1
            if hits is None:
                if rounds == 3:
                    break
            elif await cache_hits(scene.alice.reader(base)) - hits == answered:
                break  # every list and member's page came from memory: a stale entry would show
            assert time.monotonic() < deadline, f"{base} does not answer {answered} reads from its cache"
    return expected


async def cache_hits(client) -> float | None:
    """How many reads the process has answered from its read cache (/metrics); None if it has none."""
    lines = (await client.get("/metrics")).text.splitlines()
    if not [line for line in lines if line.startswith("chat_read_cache_limit_bytes") and float(line.split()[-1]) > 0]:
        return None
    return sum(float(line.split()[-1]) for line in lines if line.startswith("chat_read_cache_hits_total"))


def assert_views(seen: dict[str, dict], expected: dict[str, dict], what: str) -> None:
    for name, view in expected.items():
        assert seen[name] == view, f"{what}: what {name} reads"


async def assert_fresh_at_once(scene: Scene, base: str, what: str) -> None:
    expected = scene.expected()
    for attempt in ("first", "second"):
        assert_views(await scene.views(base), expected, f"{what}: {attempt} read on the writing process {base}")


async def assert_fresh_eventually(scene: Scene, base: str, what: str) -> None:
    """Polls until every user reads the change on `base` (fails if a stale answer outlives POLL_SECS)."""
    expected = scene.expected()
    deadline = time.monotonic() + POLL_SECS
    while (seen := await scene.views(base)) != expected:
        if time.monotonic() > deadline:
            assert_views(seen, expected, f"{what}: still stale after {POLL_SECS} s on {base}")
        await asyncio.sleep(POLL_EVERY_SECS)
    assert_views(await scene.views(base), expected, f"{what}: stale again on {base}")
