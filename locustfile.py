"""The load test: a realistic mix of chat traffic against a running server.

    locust -f locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8888

Start the server with `--rate-limits off` for load tests. Each simulated user
registers once, opens a chat with a few users who registered before it (so
chats are shared and reads see other people's writes), then lists chats,
reads and pages history, catches up, sends, and now and then renames a chat.
A request fails when its status or its body is not what the API promises.
"""

import random
import uuid

from locust import FastHttpUser, between, task

PASSWORD = "load test password"
# Names registered so far in this Locust process, to invite into new chats.
registered: list[str] = []


class ChatUser(FastHttpUser):
    wait_time = between(0.5, 2)

    def on_start(self):
        self.name = f"load_{uuid.uuid4().hex[:12]}"
        self.chats: list[int] = []
        body = {"name": self.name, "password": PASSWORD, "email": f"{self.name}@example.org"}
        with self.client.post("/api/reg", data=body, catch_response=True) as response:
            expect(response, 201, "id")
        chat_id = self._create_chat(f"{self.name}'s room")
        for friend in random.sample(registered, min(3, len(registered))):
            with self.client.post(f"/api/chats/{chat_id}/members", data={"name": friend},
                                  name="/api/chats/[id]/members", catch_response=True) as response:
                expect(response, 201)
        registered.append(self.name)

    @task(10)
    def list_chats(self):
        with self.client.get("/api/chats", catch_response=True) as response:
            chats = expect(response, 200, "chats")
            if chats is not None:
                self.chats = [chat["id"] for chat in chats["chats"]]
                documented = {"id", "title", "last_message", "last_message_time", "sender_id"}
                if any(not documented <= set(chat) for chat in chats["chats"]):
                    response.failure("a chat summary lacks a documented field")

    @task(10)
    def read_history(self):
        if self.chats:
            self._history(random.choice(self.chats), {"limit": 50})

    @task(2)
    def page_back(self):
        if self.chats:
            chat_id = random.choice(self.chats)
            page = self._history(chat_id, {"limit": 20})
            if page:
                older = self._history(chat_id, {"limit": 20, "before": page[0]["id"]})
                if older and older[-1]["id"] >= page[0]["id"]:
                    self._fail_history("paging back returned newer messages")

    @task(5)
    def send_and_see_it(self):
        if not self.chats:
            return
        chat_id = random.choice(self.chats)
        content = f"hello from {self.name} {uuid.uuid4().hex[:6]}"
        with self.client.post(f"/api/chats/{chat_id}", data={"content": content},
                              name="/api/chats/[id] send", catch_response=True) as response:
            sent = expect(response, 201, "id")
        if sent is not None:
            page = self._history(chat_id, {"before": sent["id"] + 1, "limit": 1})
            if page is not None and (not page or page[0]["content"] != content):
                self._fail_history("a sent message is not in the history")

    @task(1)
    def rename(self):
        if self.chats:
            chat_id = random.choice(self.chats)
            with self.client.put(f"/api/chats/{chat_id}", data={"title": f"renamed {uuid.uuid4().hex[:6]}"},
                                 name="/api/chats/[id] rename", catch_response=True) as response:
                expect(response, 200)

    def _create_chat(self, title: str) -> int | None:
        with self.client.post("/api/chats", data={"title": title}, catch_response=True) as response:
            created = expect(response, 201, "id")
        if created is None:
            return None
        self.chats.append(created["id"])
        return created["id"]

    def _history(self, chat_id: int, params: dict) -> list | None:
        with self.client.get(f"/api/chats/{chat_id}", params=params, name="/api/chats/[id] history",
                             catch_response=True) as response:
            body = expect(response, 200, "messages")
            if body is None:
                return None
            ids = [message["id"] for message in body["messages"]]
            if ids != sorted(ids):
                response.failure("history is not oldest first")
            return body["messages"]

    def _fail_history(self, reason: str) -> None:
        self.environment.events.request.fire(
            request_type="CHECK", name=reason, response_time=0, response_length=0,
            exception=AssertionError(reason), context={},
        )


def expect(response, status: int, key: str | None = None) -> dict | None:
    """Marks the request failed unless it has the status and a JSON body with `key`."""
    if response.status_code != status:
        response.failure(f"status {response.status_code}, expected {status}: {response.text[:200]}")
        return None
    try:
        body = response.json()
    except ValueError:
        response.failure("the body is not JSON")
        return None
    if key is not None and key not in body:
        response.failure(f"the body lacks {key!r}")
        return None
    response.success()
    return body
