"""The in-memory model behind tests/test_model.py: users, chats, messages
(with their edits) and read markers as plain Python, changed the way the
API reference (docs/api.md) says the API changes them."""

from dataclasses import dataclass, field


class ShortRepr:
    def _repr_pretty_(self, printer, cycle):
        """Hypothesis reports a dataclass field by field, a chat with all its messages: use repr()."""
        printer.text(repr(self))


@dataclass(eq=False, repr=False)
class User(ShortRepr):
    """An account the test registered; `deleted` once it deleted itself."""

    id: int
    name: str
    deleted: bool = False

    def __repr__(self):
        return f"User({self.id}, {self.name!r}{', deleted' if self.deleted else ''})"


@dataclass(eq=False, repr=False)
class Message(ShortRepr):
    """A message the test sent; deleted messages stay here, flagged."""

    chat_id: int
    id: int
    sender_id: int
    content: str
    deleted: bool = False
    edited: bool = False  # it carries `edited_at` from its first edit that changed the content on
    # What the API showed, once seen: its time never changes, and edited_at never goes back.
    time: str | None = None
    edited_at: str | None = None

    def __repr__(self):
        flags = "".join(f", {flag}" for flag in ("edited", "deleted") if getattr(self, flag))
        return f"Message(chat {self.chat_id}, id {self.id}, from {self.sender_id}{flags})"


@dataclass(eq=False, repr=False)
class Chat(ShortRepr):
    """A chat the test created; no members left means it is gone for good."""

    id: int
    title: str
    owner_id: int | None
    members: list[int]  # in the order they joined
    # Who created it, until they leave: only they are refused a second chat of
    # its title (API-DECISIONS: being added to someone's chat claims nothing).
    creator_id: int | None = None
    messages: list[Message] = field(default_factory=list)
    last_message_id: int = 0  # the chat's own counter: ids are never reused
    markers: dict[int, int] = field(default_factory=dict)  # member id -> read marker (0: none read)

    def __repr__(self):
        return f"Chat({self.id}, members {self.members}{', gone' if self.gone else ''})"

    @property
    def gone(self) -> bool:
        return not self.members

    def live_messages(self) -> list[Message]:
        """What history should show, oldest first."""
        return [] if self.gone else [m for m in self.messages if not m.deleted]

    def message(self, message_id: int) -> Message | None:
        """The live message with this id, if any."""
        return next((m for m in self.live_messages() if m.id == message_id), None)

    def unread(self, user_id: int) -> int:
        """Live messages above the member's marker (their own never are: sending moves it)."""
        marker = self.markers[user_id]
        above = [m for m in self.live_messages() if m.id > marker]
        assert all(m.sender_id != user_id for m in above), "the model moves a sender's marker"
        return len(above)


class Model:
    """Everything the test has done, and what the API should answer next."""

    def __init__(self):
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}

    def live_users(self) -> list[User]:
        return [user for user in self.users.values() if not user.deleted]

    def user_by_name(self, name: str) -> User | None:
        """The live user holding the name; names compare ignoring case."""
        for user in self.live_users():
            if user.name.lower() == name.lower():
                return user
        return None

    def messages(self) -> list[Message]:
        """Every message sent so far, deleted ones and those of gone chats too."""
        return [message for chat in self.chats.values() for message in chat.messages]

    def chats_of(self, user_id: int) -> list[Chat]:
        return [chat for chat in self.chats.values() if user_id in chat.members]

    def titles_of(self, user_id: int) -> set[str]:
        """The titles a new chat of the user's may not take: those of chats they created and never left."""
        return {chat.title for chat in self.chats_of(user_id) if chat.creator_id == user_id}

    def refusal(self, actor: User, chat: Chat) -> int | None:
        """The status refusing the actor anything in the chat, else None.

        The order is docs/api.md's (Conventions): session (401), chat (404), membership (403).
        """
        if actor.deleted:
            return 401
        if chat.gone:
            return 404
        if actor.id not in chat.members:
            return 403
        return None

    def create_chat(self, chat_id: int, title: str, owner_id: int) -> None:
        """The creator is its owner and only member, having read nothing."""
        self.chats[chat_id] = Chat(chat_id, title, owner_id, [owner_id], creator_id=owner_id, markers={owner_id: 0})

    def join(self, chat: Chat, user_id: int) -> None:
        """A newcomer's marker starts at the newest id handed out: what was said before is not unread."""
        chat.members.append(user_id)
        chat.markers[user_id] = chat.last_message_id

    def send(self, chat: Chat, sender_id: int, content: str) -> int:
        """The next id of the chat's own counter; the sender's marker moves to it."""
        chat.last_message_id += 1
        chat.messages.append(Message(chat.id, chat.last_message_id, sender_id, content))
        chat.markers[sender_id] = chat.last_message_id
        return chat.last_message_id

    def mark_read(self, chat: Chat, user_id: int, message_id: int) -> None:
        """The marker moves forward only: an older id changes nothing."""
        chat.markers[user_id] = max(chat.markers[user_id], message_id)

    def message_refusal(self, actor: User, chat: Chat, message: Message) -> int | None:
        """The status refusing the actor an edit or deletion of the message, else None."""
        refusal = self.refusal(actor, chat)
        if refusal is None and message.deleted:
            return 404
        if refusal is None and message.sender_id != actor.id:
            return 403  # not even the owner touches others' messages
        return refusal

    def leave(self, chat: Chat, user_id: int) -> None:
        """The owner's leaving passes ownership to the earliest joiner; the last one out ends the chat."""
        chat.members.remove(user_id)
        del chat.markers[user_id]  # a member who comes back starts afresh
        if chat.creator_id == user_id:
            chat.creator_id = None  # leaving frees the title for good, even if added back
        if chat.gone:
            chat.owner_id = None
        elif chat.owner_id == user_id:
            chat.owner_id = chat.members[0]

    def delete_user(self, user: User) -> None:
        """The account leaves every chat; the messages it sent stay."""
        for chat in self.chats_of(user.id):
            self.leave(chat, user.id)
        user.deleted = True
