"""Model-based test: a Hypothesis state machine drives random sequences of
registering, creating chats, adding and removing members, sending, reading,
editing and deleting messages, marking chats read, leaving and deleting
accounts against a live `run.py`, and checks after every step that each
member sees exactly what the in-memory model (tests/model_state.py) says,
read markers and unread counts included, and that strangers are refused.

CI runs the fixed, derandomized profile `model-ci` (below, with the other
profiles: `CHAT_MODEL_PROFILE=model-ci-cluster`, `model-shrink` or
`model-explore`).
"""

import os
import re

import pytest
import requests
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .model_http import Agent, expect
from .model_state import Chat, Message, Model, User
from .redis_clients import restart_pubsub_connections, sync_client
from .processes import RunningServer

# Few users and chats keep the after-every-step check (every user against
# every chat) cheap; a small pool of names and titles makes clashes common.
MAX_LIVE_USERS = 4
MAX_USERS = 6
MAX_CHATS = 4
PASSWORD = "correct horse"
NAMES = st.sampled_from(["Ann", "cy", "dee", "eve"])  # "Ann" is taken while the first user "ann" lives
TITLES = st.sampled_from(["General", "general", " General ", "Plans ☕"])
CONTENT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # UTF-8 cannot carry lone surrogates
SUMMARY_FIELDS = ("title", "owner_id", "last_message_id", "sender_id", "last_message", "last_message_time",
                  "last_message_edited_at", "last_read_id", "unread_count")
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# CI: the same examples every run, and no shrinking, which replays a failing
# sequence hundreds of times (minutes over HTTP); a failure prints its steps.
# Locally, CHAT_MODEL_PROFILE=model-shrink replays the same examples and
# shrinks a failure to a minimal sequence; model-explore searches afresh.
settings.register_profile(
    "model-ci",
    max_examples=50,
    stateful_step_count=50,
    deadline=None,  # each step is several real HTTP requests
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate],
)
# CI's Redis Cluster pass: 20 fixed examples (the single-Redis
# pass runs all 50; what differs on a cluster is the storage underneath).
settings.register_profile("model-ci-cluster", settings.get_profile("model-ci"), max_examples=20)
settings.register_profile("model-shrink", settings.get_profile("model-ci"), phases=list(Phase))
settings.register_profile("model-explore", settings.get_profile("model-shrink"), max_examples=200, derandomize=False)
PROFILE = os.environ.get("CHAT_MODEL_PROFILE", "model-ci")


def has_chats(machine) -> bool:
    return bool(machine.model.chats)


class ChatMachine(RuleBasedStateMachine):
    def __init__(self, base: str, redis_url: str):
        super().__init__()
        # Each example starts from an empty database with its own users (and a
        # server that has forgotten what it cached: ids start again at 1).
        with sync_client(redis_url) as client:
            client.flushall()
            restart_pubsub_connections(client)
        self.base = base
        self.model = Model()
        self.agents: dict[int, Agent] = {}
        self.checks = 0  # invariant runs so far: whose turn it is to try a chat as a stranger

    def teardown(self):
        for agent in self.agents.values():
            agent.close()

    def as_user(self, user: User, method: str, path: str, **kw) -> requests.Response:
        return self.agents[user.id].call(method, path, **kw)

    # Choosing who and what: mostly the ones for whom the step succeeds,
    # sometimes anyone or anything, so that refusals are tried as well.

    def pick(self, data, label: str, likely: list, rest: list):
        return data.draw(st.sampled_from(likely * 3 + rest), label=label)

    def pick_chat(self, data) -> Chat:
        chats = list(self.model.chats.values())
        return self.pick(data, "chat", [chat for chat in chats if not chat.gone], chats)

    def pick_actor(self, data, chat: Chat, *also: User) -> User:
        """Someone acting in the chat: its members (and `also`) are likelier."""
        likely = [*also, *(self.model.users[uid] for uid in chat.members)]
        return self.pick(data, "actor", likely, list(self.model.users.values()))

    # Rules: each predicts the answer from the model, then applies it there.

    @initialize()
    def two_users(self):
        for name in ("ann", "ben"):
            self.register_user(name)

    @precondition(lambda self: len(self.model.users) < MAX_USERS and len(self.model.live_users()) < MAX_LIVE_USERS)
    @rule(name=NAMES)
    def register(self, name):
        if self.model.user_by_name(name) is None:
            self.register_user(name)
        else:  # taken, ignoring case, by a live user
            agent = Agent(self.base)
            fields = {"name": name, "password": PASSWORD, "email": f"{name}@x.org"}
            expect(agent.call("POST", "/api/reg", data=fields), 400)
            agent.close()

    def register_user(self, name: str) -> None:
        agent = Agent(self.base)
        response = agent.call("POST", "/api/reg", data={"name": name, "password": PASSWORD, "email": f"{name}@x.org"})
        user_id = expect(response, 201)["id"]
        assert user_id not in self.model.users, "user ids are never reused"
        agent.cookies = {"user_id": response.cookies["user_id"], "token": response.cookies["token"]}
        assert agent.cookies["user_id"] == str(user_id)
        self.model.users[user_id] = User(user_id, name)
        self.agents[user_id] = agent

    @precondition(lambda self: len(self.model.chats) < MAX_CHATS)
    @rule(title=TITLES, data=st.data())
    def create_chat(self, title, data):
        actor = self.pick(data, "actor", self.model.live_users(), list(self.model.users.values()))
        response = self.as_user(actor, "POST", "/api/chats", data={"title": title})
        if actor.deleted:
            expect(response, 401)
        elif title.strip() in self.model.titles_of(actor.id):
            expect(response, 409)
        else:
            chat_id = expect(response, 201)["id"]
            assert chat_id not in self.model.chats, "chat ids are never reused"
            self.model.create_chat(chat_id, title.strip(), actor.id)

    @precondition(has_chats)
    @rule(title=TITLES, data=st.data())
    def rename_chat(self, title, data):
        chat = self.pick_chat(data)
        actor = self.pick_actor(data, chat)
        response = self.as_user(actor, "PUT", f"/api/chats/{chat.id}", data={"title": title})
        refusal = self.model.refusal(actor, chat)
        expect(response, refusal or 200)
        if refusal is None:
            chat.title = title.strip()

    @precondition(has_chats)
    @rule(by_name=st.booleans(), data=st.data())
    def add_member(self, by_name, data):
        chat = self.pick_chat(data)
        actor = self.pick_actor(data, chat)
        outsiders = [user for user in self.model.live_users() if user.id not in chat.members]
        newcomer = self.pick(data, "newcomer", outsiders, list(self.model.users.values()))
        # By name, in another case: the lookup ignores case, and finds
        # whoever holds the name now (a deleted user's name is free again).
        fields = {"name": newcomer.name.swapcase()} if by_name else {"user_id": newcomer.id}
        response = self.as_user(actor, "POST", f"/api/chats/{chat.id}/members", data=fields)
        found = self.model.user_by_name(newcomer.name) if by_name else (None if newcomer.deleted else newcomer)
        refusal = self.model.refusal(actor, chat)
        if refusal is None and found is None:
            refusal = 404
        elif refusal is None and found.id in chat.members:
            refusal = 409
        expect(response, refusal or 201)
        if refusal is None:
            self.model.join(chat, found.id)

    @precondition(has_chats)
    @rule(by_owner=st.booleans(), data=st.data())
    def part(self, by_owner, data):
        """Someone leaves the chat, or its owner removes a member (also tried by others)."""
        chat = self.pick_chat(data)
        owner = [self.model.users[chat.owner_id]] if by_owner and chat.owner_id else []
        actor = self.pick_actor(data, chat, *owner)
        if not by_owner:
            member, response = actor, self.as_user(actor, "DELETE", "/api/chats", params={"chat_id": chat.id})
        else:
            others = [self.model.users[uid] for uid in chat.members if uid != actor.id]
            member = self.pick(data, "member", others, list(self.model.users.values()))
            path = f"/api/chats/{chat.id}/members"
            response = self.as_user(actor, "DELETE", path, params={"user_id": member.id})
        refusal = self.model.refusal(actor, chat)
        if refusal is None and member is not actor:
            if chat.owner_id != actor.id:
                refusal = 403  # only the owner removes others
            elif member.id not in chat.members:
                refusal = 404
        expect(response, refusal or 200)
        if refusal is None:
            self.model.leave(chat, member.id)

    @precondition(has_chats)
    @rule(contents=st.lists(CONTENT, min_size=1, max_size=3), data=st.data())
    def send(self, contents, data):
        """A few messages to one chat, each from someone (a member, likely)."""
        chat = self.pick_chat(data)
        for content in contents:
            actor = self.pick_actor(data, chat)
            response = self.as_user(actor, "POST", f"/api/chats/{chat.id}", data={"content": content})
            refusal = 401 if actor.deleted else 400 if not content.strip() else self.model.refusal(actor, chat)
            if refusal is not None:
                expect(response, refusal)
                continue
            message_id = self.model.send(chat, actor.id, content)
            assert expect(response, 201) == {"status": "ok", "id": message_id}

    def pick_message(self, data) -> tuple[Message, Chat, User]:
        """A message (a live one, likely), its chat, and someone acting on it (its sender, likely)."""
        messages = self.model.messages()
        live = [m for m in messages if not m.deleted and not self.model.chats[m.chat_id].gone]
        message = self.pick(data, "message", live, messages)
        chat = self.model.chats[message.chat_id]
        return message, chat, self.pick_actor(data, chat, self.model.users[message.sender_id])

    @precondition(lambda self: self.model.messages())
    @rule(by_path=st.booleans(), data=st.data())
    def delete_message(self, by_path, data):
        """By either of the two addresses of a message."""
        message, chat, actor = self.pick_message(data)
        if by_path:
            response = self.as_user(actor, "DELETE", f"/api/chats/{chat.id}/messages/{message.id}")
        else:
            response = self.as_user(actor, "DELETE", f"/api/chats/{chat.id}", params={"id": message.id})
        refusal = self.model.message_refusal(actor, chat, message)
        expect(response, refusal or 200)
        if refusal is None:
            message.deleted = True

    @precondition(lambda self: self.model.messages())
    @rule(content=CONTENT, same=st.sampled_from([False, False, True]), data=st.data())
    def edit_message(self, content, same, data):
        """Sometimes to the content it has already, which changes nothing (no `edited_at`)."""
        message, chat, actor = self.pick_message(data)
        content = message.content if same else content
        path = f"/api/chats/{chat.id}/messages/{message.id}"
        response = self.as_user(actor, "PUT", path, data={"content": content})
        refusal = 401 if actor.deleted else 400 if not content.strip() else None
        refusal = refusal or self.model.message_refusal(actor, chat, message)
        expect(response, refusal or 200)
        if refusal is None and content != message.content:
            message.content, message.edited = content, True

    def pick_message_id(self, data, beyond: int) -> tuple[int, Chat, User]:
        """A message id (a live one's, likely; else any up to `beyond` past the newest), its chat and an actor."""
        message, chat, actor = self.pick_message(data)
        ids = list(range(1, chat.last_message_id + 1 + beyond))
        return self.pick(data, "message_id", [message.id], ids), chat, actor

    @precondition(lambda self: self.model.messages())
    @rule(data=st.data())
    def read_message(self, data):
        """One message by its id (a deleted one, or the next id, is 404)."""
        message_id, chat, actor = self.pick_message_id(data, beyond=1)
        response = self.as_user(actor, "GET", f"/api/chats/{chat.id}/messages/{message_id}")
        message = chat.message(message_id)
        refusal = self.model.refusal(actor, chat) or (404 if message is None else None)
        body = expect(response, refusal or 200)
        if refusal is None:
            assert list(body) == ["message"]
            self.check_message(body["message"], message)

    @precondition(lambda self: self.model.messages())
    @rule(data=st.data())
    def mark_read(self, data):
        """Up to any id: a deleted one is fine, one beyond the newest refused, an older one changes nothing."""
        message_id, chat, actor = self.pick_message_id(data, beyond=2)
        response = self.as_user(actor, "POST", f"/api/chats/{chat.id}/read", data={"message_id": message_id})
        refusal = self.model.refusal(actor, chat)
        if refusal is None and message_id > chat.last_message_id:
            refusal = 400
        expect(response, refusal or 200)
        if refusal is None:
            self.model.mark_read(chat, actor.id, message_id)

    # Deleting leaves at least two live users, so later steps still have people to act.
    @precondition(lambda self: len(self.model.live_users()) >= 3)
    @rule(own=st.booleans(), data=st.data())
    def delete_user(self, own, data):
        everyone = list(self.model.users.values())
        actor = self.pick(data, "actor", self.model.live_users(), everyone)
        account = actor if own else self.pick(data, "account", [], everyone)
        response = self.as_user(actor, "DELETE", f"/api/user/{account.id}")
        if actor.deleted:
            expect(response, 401)
        elif account is not actor:
            expect(response, 404 if account.deleted else 403)
        else:
            expect(response, 200)
            self.model.delete_user(actor)
            expect(self.as_user(actor, "GET", "/api/chats"), 401)  # every session of the account ended
            for user in self.model.live_users()[:1]:
                expect(self.as_user(user, "GET", f"/api/user/{actor.id}"), 404)

    # The invariant: after every step, what each live user sees.

    @invariant()
    def everyone_sees_what_the_model_says(self):
        live = self.model.live_users()
        self.checks += 1
        for chat in self.model.chats.values():
            if chat.gone:
                for user in live[:1]:
                    expect(self.as_user(user, "GET", f"/api/chats/{chat.id}"), 404)
                continue
            for user in live:
                if user.id in chat.members:
                    self.check_history(user, chat)
            # One stranger a step, in turn, tries the chat: every step is several requests fewer.
            strangers = [user for user in live if user.id not in chat.members]
            if strangers:
                self.check_stranger(strangers[self.checks % len(strangers)], chat)
            self.check_members(chat)
        for user in live:
            self.check_chat_list(user)

    def check_history(self, user: User, chat: Chat) -> None:
        page = expect(self.as_user(user, "GET", f"/api/chats/{chat.id}", params={"limit": 1000}), 200)["messages"]
        live = chat.live_messages()
        assert [m["id"] for m in page] == [m.id for m in live], f"user {user.id} reads chat {chat.id}"
        for shown, message in zip(page, live):
            self.check_message(shown, message)
        times = [m["time"] for m in page]
        assert times == sorted(times), "times never go back as ids go up"

    @staticmethod
    def check_message(shown: dict, message: Message) -> None:
        """The model's sender and content, `edited_at` last once edited; the time stays, edited_at never goes back."""
        fields = ["id", "sender_id", "time", "content"] + (["edited_at"] if message.edited else [])
        assert list(shown) == fields, f"{message}: {shown}"
        assert (shown["id"], shown["sender_id"], shown["content"]) == (message.id, message.sender_id, message.content)
        assert TIME_RE.fullmatch(shown["time"]) and shown["time"] == (message.time or shown["time"]), f"{message}"
        message.time = shown["time"]
        if message.edited:
            assert TIME_RE.fullmatch(shown["edited_at"]), f"{message}: {shown}"
            assert shown["edited_at"] >= max(message.time, message.edited_at or ""), f"{message}: {shown}"
            message.edited_at = shown["edited_at"]

    def check_stranger(self, user: User, chat: Chat) -> None:
        """A non-member can neither read nor post (a stored post shows in the members' check)."""
        expect(self.as_user(user, "GET", f"/api/chats/{chat.id}", params={"limit": 1000}), 403)
        expect(self.as_user(user, "POST", f"/api/chats/{chat.id}", data={"content": "let me in"}), 403)

    def check_members(self, chat: Chat) -> None:
        reader = self.model.users[chat.members[0]]
        listed = expect(self.as_user(reader, "GET", f"/api/chats/{chat.id}/members"), 200)
        # The model's users never open a socket: nobody is online.
        members = [{"id": uid, "name": self.model.users[uid].name, "online": False} for uid in chat.members]
        assert listed == {"owner_id": chat.owner_id, "members": members}, f"members of chat {chat.id}"

    def check_chat_list(self, user: User) -> None:
        listed = expect(self.as_user(user, "GET", "/api/chats"), 200)["chats"]
        assert sorted(c["id"] for c in listed) == sorted(c.id for c in self.model.chats_of(user.id)), (
            f"user {user.id}'s chat list"
        )
        for summary in listed:
            chat = self.model.chats[summary["id"]]
            # Every member read the chat's history just before: the model knows its newest's times.
            newest = (chat.live_messages() or [None])[-1]
            wanted = (chat.title, chat.owner_id, None, None, None, None, None)
            if newest is not None:
                wanted = (chat.title, chat.owner_id, newest.id, newest.sender_id, newest.content, newest.time,
                          newest.edited_at)
            wanted += (chat.markers[user.id], chat.unread(user.id))
            seen = tuple(summary[k] for k in SUMMARY_FIELDS)
            assert seen == wanted, f"user {user.id}'s summary of chat {chat.id}"
        order = [(c["last_message_time"] or c["created_at"], c["id"]) for c in listed]
        assert order == sorted(order, reverse=True), "most recent activity first"


@pytest.fixture(scope="module")
def live_server(redis_url):
    server = RunningServer("--redis-url", redis_url, "--rate-limits", "off", "--log-level", "warning")
    yield server
    server.stop()


@pytest.mark.timeout(300 if PROFILE == "model-ci" else 3600)  # shrinking over HTTP takes minutes
def test_every_member_sees_what_the_model_says(live_server, redis_url):
    run_state_machine_as_test(
        lambda: ChatMachine(live_server.base, redis_url), settings=settings.get_profile(PROFILE)
    )

