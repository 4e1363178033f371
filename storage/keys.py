"""Every Redis key the service uses, built in one place.

Keys that one atomic operation changes together share a hash tag (`{42}`), so
each script stays inside one Redis Cluster slot. Every part
that comes from a client (ids, names, token digests) is validated before it
reaches these builders.
"""

USER_ID_SEQ = "seq:user_id"  # string counter: last user id handed out
CHAT_ID_SEQ = "seq:chat_id"  # string counter: last chat id handed out
SESSIONS_ENDED_CHANNEL = "sessions:ended"  # pub/sub: {"user_id", "session"} of each logout
SCHEMA_VERSION_KEY = "schema:version"  # string: the layout version of the data (absent: 1)


def user_key(user_id: int) -> str:
    """Hash: id, name, email, password (bcrypt), created_at, allow_adds ("anyone"
    or "contacts"; absent: anyone)."""
    return f"user:{{{user_id}}}"


def user_chats_key(user_id: int) -> str:
    """Set of chat ids: an index of the chats' member sets, never the authority."""
    return f"user:{{{user_id}}}:chats"


def user_created_chats_key(user_id: int) -> str:
    """Hash: chat id -> its titles (newline-separated: the current one, and maybe a
    few it had), for each chat the user created and has not left since: where
    a new chat's title must not repeat. An index like user_chats_key, never
    the authority (the title check confirms each candidate against the chat)."""
    return f"user:{{{user_id}}}:created"


def user_created_titles_key(user_id: int) -> str:
    """Hash: title -> ids (newline-separated) of the chats whose entry in
    user_created_chats_key names it: the title check's lookup, so that it
    costs the same in 3 chats as in 3,000. Both are written together by
    lua/created_index.lua."""
    return f"user:{{{user_id}}}:titles"


def created_index_keys(user_id: int) -> list[str]:
    """The keys of lua/created_index.lua."""
    return [user_created_chats_key(user_id), user_created_titles_key(user_id)]


def user_sessions_key(user_id: int) -> str:
    """Sorted set: token digest -> expiry (unix seconds) of each of the user's sessions."""
    return f"user:{{{user_id}}}:sessions"


def session_key(user_id: int, token_digest: str) -> str:
    """String (created_at) with a TTL: the session exists while this key does."""
    return f"user:{{{user_id}}}:session:{token_digest}"


def user_chat_creation_lock_key(user_id: int) -> str:
    """String with a short TTL: held while the user creates a chat (title check + create)."""
    return f"user:{{{user_id}}}:lock:create_chat"


def name_key(folded_name: str) -> str:
    """String: user id owning the case-folded name."""
    return f"name:{folded_name}"


def chat_key(chat_id: int) -> str:
    """Hash: id, title, owner_id, creator_id, created_at, last_message_id, last_message_time, join_seq,
    log_seq (the last event number handed out), log_epoch, log_replid (the
    replication id of the node that last wrote the log: an event written on
    a node with another one, or without it, starts a new epoch first; see
    lua/chat_prelude.lua's `emit`)."""
    return f"chat:{{{chat_id}}}"


def chat_members_key(chat_id: int) -> str:
    """Sorted set: member user id -> join order (earliest joiner inherits ownership)."""
    return f"chat:{{{chat_id}}}:members"


def chat_messages_key(chat_id: int) -> str:
    """Sorted set: message JSON -> message id."""
    return f"chat:{{{chat_id}}}:messages"


def chat_summary_key(chat_id: int) -> str:
    """String: the chat as GET /api/chats lists it (JSON), rewritten by every change to it."""
    return f"chat:{{{chat_id}}}:summary"


def chat_member_key(chat_id: int, user_id: int) -> str:
    """String while the user is a member: their read marker, the id of the last
    message they have read (0: none). Lets one read check many chats at once."""
    return f"chat:{{{chat_id}}}:member:{user_id}"


def chat_log_key(chat_id: int) -> str:
    """Stream: the chat's events, entry id `<seq>-0`; a `message` event is
    stored as `m` -> message id, a `message_edited` as `x` -> message id
    (both rebuilt from the messages on replay), any other as `e` -> its
    JSON. Trimmed to about --chat-log-events entries."""
    return f"chat:{{{chat_id}}}:log"


def chat_log_prior_key(chat_id: int) -> str:
    """Sorted set: "<message id>:<message JSON>" -> the seq of the event that
    replaced that version (an edit or a deletion), so a replay of an older event shows
    the message as it was then. Trimmed with the log."""
    return f"chat:{{{chat_id}}}:log:prior"


def chat_keys(chat_id: int, member_id: int | None = None) -> list[str]:
    """The keys of one chat in the order the chat scripts expect them, with
    the member key of the user a script adds, removes, or moves the read marker of last."""
    names = [
        chat_key(chat_id), chat_members_key(chat_id), chat_messages_key(chat_id), chat_summary_key(chat_id),
        chat_log_key(chat_id), chat_log_prior_key(chat_id),
    ]  # fmt: skip
    if member_id is not None:
        names.append(chat_member_key(chat_id, member_id))
    return names


def chat_typing_key(chat_id: int, user_id: int) -> str:
    """String "1" with a 3 s TTL: the user's last typing notice in the chat
    went out within that time (later ones are dropped until it expires)."""
    return f"chat:{{{chat_id}}}:typing:{user_id}"


def user_presence_key(user_id: int) -> str:
    """Sorted set: id of each server process holding a socket of the user ->
    when that process's claim expires (ms since the epoch); online while a
    score is in the future. The key's own TTL only clears it away."""
    return f"user:{{{user_id}}}:presence"


def presence_channel(user_id: int) -> str:
    """Pub/sub channel of the user's presence changes, {"type":"presence",
    "user_id","online"}, for the processes whose sockets watch the user."""
    return f"presence:{{{user_id}}}"


def user_events_channel(user_id: int) -> str:
    """Pub/sub channel of the events meant for one user only (chat_created, read,
    and a copy of member_added/member_removed for the user they concern)."""
    return f"user:{{{user_id}}}:events"


def chat_events_channel(chat_id: int) -> str:
    """Pub/sub channel of every event of one chat, in the chat's slot (a shard
    channel on a Redis 7 cluster)."""
    return f"chat:{{{chat_id}}}:events"


def id_of_channel(channel: str) -> int:
    """The user or chat id in a `user_events_channel` or `chat_events_channel` name."""
    return int(channel[channel.index("{") + 1 : channel.index("}")])


def send_idempotency_key(chat_id: int, user_id: int, key_digest: str) -> str:
    """String "<message id>:<content digest>" with a TTL: the first send made
    with one Idempotency-Key (SHA-256 of it) by one user in one chat."""
    return f"chat:{{{chat_id}}}:sent:{user_id}:{key_digest}"


# Rate limits. Each is one key, so each check is atomic on its own slot.


def login_failures_by_name_key(folded_name: str) -> str:
    """Sorted set: failed logins for a case-folded name (member: attempt id, score: ms)."""
    return f"rate:login:name:{{{folded_name}}}"


def login_failures_by_address_key(address: str) -> str:
    """Sorted set: failed logins from one client address (an IPv6 /64)."""
    return f"rate:login:addr:{{{address}}}"


def logins_by_name_key(folded_name: str) -> str:
    """Sorted set: successful logins for a case-folded name (as the failures' key)."""
    return f"rate:login_ok:name:{{{folded_name}}}"


def logins_by_address_key(address: str) -> str:
    """Sorted set: successful logins from one client address."""
    return f"rate:login_ok:addr:{{{address}}}"


def registrations_by_address_key(address: str) -> str:
    """Sorted set: accounts created from one client address."""
    return f"rate:reg:addr:{{{address}}}"


def message_rate_key(user_id: int) -> str:
    """String: the user's send bucket (GCRA theoretical arrival time, ms)."""
    return f"user:{{{user_id}}}:rate:send"


# Open WebSockets, counted across processes (storage/socket_counts.py).


def user_sockets_key(user_id: int) -> str:
    """Sorted set: id of each open WebSocket of the user ("<process id>:<n>") ->
    when its claim expires (ms since the epoch) unless its process renews it."""
    return f"user:{{{user_id}}}:sockets"


def address_sockets_key(address: str) -> str:
    """Sorted set, as user_sockets_key, of the WebSockets opened from one client
    address (an IPv4 address or an IPv6 /64, as rate limits count it)."""
    return f"sockets:addr:{{{address}}}"
