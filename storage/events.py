"""Live events over Redis pub/sub.

Four kinds of channel:
- `chat:{C}:events`, one per chat: every event of the chat, numbered and
  published once by the chat script that makes the change (a shard channel
  on a Redis 7 cluster: SPUBLISH/SSUBSCRIBE, so it stays inside its shard).
- `user:{U}:events`, one per user: what only that user is told
  (`chat_created`, and a copy of `member_added`/`member_removed` about them,
  so that a process not yet following the chat learns of it).
- `presence:{U}`, one per user: their presence changes, for the processes
  whose sockets watch them (see storage.presence).
- `sessions:ended`, one for everybody: every logout and account deletion,
  so each server process can close sockets and forget cached sessions.

A server process holds one `EventFeed`: one classic pub/sub connection
(sessions:ended, the channels of the users with a socket on this process,
and the chat channels unless they are sharded), and on a sharded cluster
one more per master, for the chat channels of its slots. Each channel is
subscribed once per process however many sockets need it. User and chat
channels have holders (the hub for its sockets, the read cache for its
entries): a channel stays subscribed while any holder keeps it.
"""

import json
import logging
from collections import defaultdict
from collections.abc import Callable

from . import keys
from .cluster import is_cluster, node_client
from .pubsub import Subscriber

log = logging.getLogger("chat.events")

LIVE = "live"  # the holder name of the hub's subscriptions (for its sockets)


def encode_event(kind: str, **fields) -> str:
    """An event as compact JSON, its "type" first."""
    return json.dumps({"type": kind, **fields}, ensure_ascii=False, separators=(",", ":"))


def event_body(**fields) -> str:
    """An event's own fields as JSON without braces, for the chat scripts
    (chat_prelude.lua's emit) to put after its type, chat id and seq."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))[1:-1]


async def publish(redis_client, user_id: int, event: str) -> None:
    await redis_client.publish(keys.user_events_channel(user_id), event)


class EventFeed:
    """This process's pub/sub connections, and who listens to what comes in.

    Listeners: `on_user_event(user_id, event_json)`, `on_chat_event(chat_id,
    event_json)`, `on_presence_event(user_id, event_json)`; each of
    `session_listeners(user_id, digest_or_None)`; each of
    `connection_listeners(connected: bool)`, when the classic connection
    (sessions, user and presence channels) goes live and when it is lost; each of
    `chat_listeners(chat_id, live: bool)`, when a chat's subscription is
    lost and when it is live again; each of `chat_event_listeners(chat_id,
    event_json)` and `user_event_listeners(user_id, event_json)` before
    `on_chat_event` / `on_user_event` (the read cache: it must forget before a
    socket is told, so a client that reads on the event reads the change);
    each of `lost_listeners()`, whenever any subscription is lost. Nothing published while a subscription
    was down is replayed here: the chat logs are for that (see server.hub).
    Connections reconnect by themselves, with backoff, and ping when idle.
    """

    def __init__(self, redis_client):
        self._redis = redis_client
        self.on_user_event: Callable[[int, str], None] = lambda user_id, event: None
        self.on_chat_event: Callable[[int, str], None] = lambda chat_id, event: None
        self.on_presence_event: Callable[[int, str], None] = lambda user_id, event: None
        self.session_listeners: list[Callable[[int, str | None], None]] = []
        self.connection_listeners: list[Callable[[bool], None]] = []
        self.chat_listeners: list[Callable[[int, bool], None]] = []
        self.chat_event_listeners: list[Callable[[int, str], None]] = []
        self.user_event_listeners: list[Callable[[int, str], None]] = []
        self.lost_listeners: list[Callable[[], None]] = []
        self._holders: defaultdict[str, set[str]] = defaultdict(set)  # user or chat channel -> who keeps it
        self.connected = False
        self.sharded = False  # chat channels are shard channels (see use_shard_channels)
        self._main = Subscriber("main", self._new_pubsub, self, anchor=keys.SESSIONS_ENDED_CHANNEL)
        self._shards: dict[str, Subscriber] = {}  # node name -> its shard channels' connection
        self._homes: dict[str, Subscriber] = {}  # chat channel -> the connection holding it

    def use_shard_channels(self) -> None:
        """Chat channels are shard channels from now on (a Redis 7 cluster)."""
        self.sharded = True

    def start(self) -> None:
        """Starts listening (inside the running event loop)."""
        self._main.start()

    async def stop(self) -> None:
        for subscriber in [self._main, *self._shards.values()]:
            await subscriber.stop()
        self._shards.clear()

    async def subscribe(self, user_id: int, holder: str = LIVE) -> bool:
        """Subscribes to the user's channel; returns once Redis has confirmed it
        (or after a few seconds, False, if the connection is down meanwhile)."""
        channel = keys.user_events_channel(user_id)
        self._holders[channel].add(holder)
        return await self._main.subscribe(channel)

    def unsubscribe(self, user_id: int, holder: str = LIVE) -> None:
        channel = keys.user_events_channel(user_id)
        if self._let_go(channel, holder):
            self._main.unsubscribe(channel)

    def _let_go(self, channel: str, holder: str) -> bool:
        """Drops one holder of the channel; True if that was the last."""
        holders = self._holders.get(channel)
        if holders is None:
            return False
        holders.discard(holder)
        if holders:
            return False
        del self._holders[channel]
        return True

    async def subscribe_presence(self, user_id: int) -> bool:
        """Subscribes to the user's presence channel (on the classic connection)."""
        return await self._main.subscribe(keys.presence_channel(user_id))

    def unsubscribe_presence(self, user_id: int) -> None:
        self._main.unsubscribe(keys.presence_channel(user_id))

    async def subscribe_chat(self, chat_id: int, holder: str = LIVE) -> bool:
        """Subscribes to the chat's channel; True once Redis has confirmed it."""
        channel = keys.chat_events_channel(chat_id)
        self._holders[channel].add(holder)
        home = self._homes.get(channel) or self._home_for(channel)
        self._homes[channel] = home
        return await home.subscribe(channel)

    def unsubscribe_chat(self, chat_id: int, holder: str = LIVE) -> None:
        channel = keys.chat_events_channel(chat_id)
        if not self._let_go(channel, holder):
            return
        home = self._homes.pop(channel, None)
        if home is not None:
            home.unsubscribe(channel)

    def keep_user_if_live(self, user_id: int, holder: str) -> bool:
        """If the user's channel is live, `holder` holds it too (at once) and True;
        else False (subscribe to wait for it)."""
        channel = keys.user_events_channel(user_id)
        return self._keep_if_live(channel, self._main, holder)

    def keep_chat_if_live(self, chat_id: int, holder: str) -> bool:
        """If the chat's channel is live, `holder` holds it too (at once) and True;
        else False (subscribe_chat to wait for it)."""
        channel = keys.chat_events_channel(chat_id)
        return self._keep_if_live(channel, self._homes.get(channel), holder)

    def _keep_if_live(self, channel: str, home: Subscriber | None, holder: str) -> bool:
        if home is None or channel not in home.confirmed:
            return False
        self._holders[channel].add(holder)
        return True

    # What the connections report (Subscriber's owner).

    def on_message(self, channel: str, data: str) -> None:
        if channel == keys.SESSIONS_ENDED_CHANNEL:
            ended = json.loads(data)
            for listener in self.session_listeners:
                listener(ended["user_id"], ended["session"])
        elif channel.startswith("chat:"):
            chat_id = keys.id_of_channel(channel)
            for listener in self.chat_event_listeners:
                listener(chat_id, data)
            self.on_chat_event(chat_id, data)
        elif channel.startswith("presence:"):
            self.on_presence_event(keys.id_of_channel(channel), data)
        else:
            user_id = keys.id_of_channel(channel)
            for listener in self.user_event_listeners:
                listener(user_id, data)
            self.on_user_event(user_id, data)

    def on_confirmed(self, channel: str) -> None:
        if channel == keys.SESSIONS_ENDED_CHANNEL:
            self._set_connected(True)
        elif channel.startswith("chat:"):
            for listener in self.chat_listeners:
                listener(keys.id_of_channel(channel), True)

    def on_lost(self, channels: set[str]) -> None:
        for listener in self.lost_listeners:
            listener()
        if keys.SESSIONS_ENDED_CHANNEL in channels:
            self._set_connected(False)
        for channel in channels:
            if channel.startswith("chat:"):
                for listener in self.chat_listeners:
                    listener(keys.id_of_channel(channel), False)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        for listener in self.connection_listeners:
            listener(connected)

    # Connections.

    async def _new_pubsub(self):
        if not is_cluster(self._redis):
            return self._redis.pubsub()
        # Any node will do for classic channels (PUBLISH reaches subscribers
        # on every node): a random one spreads the processes over the cluster.
        await self._redis.initialize()
        return self._redis.pubsub(node=self._redis.get_random_node())

    def _home_for(self, channel: str) -> Subscriber:
        """The connection that should hold a chat channel: the classic one, or
        that of the master owning the channel's slot."""
        if not self.sharded:
            return self._main
        name = self._redis.get_node_from_key(channel).name
        if name not in self._shards:
            subscriber = Subscriber(f"shard {name}", lambda: self._shard_pubsub(name), self, sharded=True)
            subscriber.before_connect = lambda: self._keep_own_channels(subscriber)
            self._shards[name] = subscriber
            subscriber.start()
        return self._shards[name]

    async def _shard_pubsub(self, name: str):
        node = self._redis.get_node(node_name=name)
        if node is None:
            raise ConnectionError(f"no node {name} in the cluster any more")
        return node_client(self._redis, node).pubsub()

    async def _keep_own_channels(self, subscriber: Subscriber) -> None:
        """Before a shard connection reconnects (its master died, or a slot
        moved): learns the cluster's layout again and hands each channel whose
        slot another master now serves to that master's connection."""
        await self._redis.nodes_manager.initialize()
        for channel in list(subscriber.channels):
            home = self._home_for(channel)
            if home is not subscriber:
                subscriber.channels.discard(channel)
                self._homes[channel] = home
                home.adopt(channel)
