"""What the lines send. A throughput line is a list of requests that a load
generator plays in order, round and round: it takes the population's users
in turn, so consecutive requests carry different users' cookies and no user
is rate limited; PASSES rounds over the users give each one several chats
to read and write.
"""

import dataclasses
import itertools
import random
import urllib.parse
from collections.abc import Iterator

from .population import Member
from .seed import HISTORY_PAGE

PASSES = 10
SEND_BODY = "content=a+benchmark+message+of+ordinary+length"
# The mixed line: 90 % reads, split between the list and a history page, 10 % sends.
MIX = {"list": 45, "history": 45, "send": 10}
MIX_SEED = 13  # the same sequence in every run


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    cookie: str | None = None
    body: str | None = None  # form-encoded
    expect: int = 200  # the status a correct answer has


def chat_list(member: Member, _chooser: random.Random) -> Request:
    return Request("GET", "/api/chats", member.cookie)


def history(member: Member, chooser: random.Random) -> Request:
    """The newest page of one of the member's chats."""
    return Request("GET", f"/api/chats/{chooser.choice(member.chats)}?limit={HISTORY_PAGE}", member.cookie)


def send(member: Member, chooser: random.Random) -> Request:
    """A message to one of the member's chats."""
    return Request("POST", f"/api/chats/{chooser.choice(member.chats)}", member.cookie, SEND_BODY, expect=201)


def mixed(member: Member, chooser: random.Random) -> Request:
    """One of the three, in the proportions of MIX."""
    (kind,) = chooser.choices(list(MIX), weights=list(MIX.values()))
    return {"list": chat_list, "history": history, "send": send}[kind](member, chooser)


def line(make, members: list[Member]) -> list[Request]:
    """PASSES rounds over the members, one request of `make` each."""
    chooser = random.Random(MIX_SEED)
    return [make(member, chooser) for _ in range(PASSES) for member in members]


def creations(cookie: str) -> Iterator[Request]:
    """Endless chat creations by one user, each with a title of its own."""
    for number in itertools.count(1):
        body = urllib.parse.urlencode({"title": f"new chat {number}"})
        yield Request("POST", "/api/chats", cookie, body, expect=201)
