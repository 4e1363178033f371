"""The web client (GET /) in Chromium, driven by its accessible names: two
people chatting live in two browser contexts (unread badges, edits,
deletes, typing, presence), a socket killed mid-conversation, older pages,
keyboard-only use, the API's own error words, and an axe-core check.

Runs against `run.py` on the test Redis. Skipped, with the reason, where no
Chromium is found (Debian's `chromium`, else Playwright's own). With
CHAT_WEB_SCREENSHOTS=docs/screenshots the screenshots go where the README
shows them; otherwise into the test's temporary folder.
"""

import os
import re
from pathlib import Path

import pytest
import requests

from .browser import (
    PASSWORD, WAIT_MS, add_member, chat_button, chats, create_chat, find_chromium, message_item, messages, register,
    send,
)  # fmt: skip
from .processes import REPO, RunningServer
from .redis_clients import sync_client

CHROMIUM, WHY_NOT = find_chromium()
if CHROMIUM is None:
    pytest.skip(WHY_NOT, allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)
DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(redis_url, tmp_path_factory):
    with sync_client(redis_url) as client:
        client.flushall()  # fixed names (alice, bob) read better in the screenshots
    server = RunningServer("--redis-url", redis_url, "--data-dir", str(tmp_path_factory.mktemp("web")),
                           "--rate-limits", "off")  # fmt: skip
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def person(browser, server):
    """Opens a page in a browser context of its own (one person); the test
    fails on any script error or Content-Security-Policy violation."""
    contexts, problems = [], []

    def open_page(viewport=DESKTOP):
        context = browser.new_context(viewport=viewport, base_url=server.base)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", lambda line: problems.append(line.text) if _policy_violation(line.text) else None)
        contexts.append(context)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert problems == []


def _policy_violation(text: str) -> bool:
    return "Content Security Policy" in text or "TrustedHTML" in text or "Trusted Type" in text


def _contents(page) -> list[str]:
    return messages(page).locator(".content").all_text_contents()


def test_two_people_chat_live(person, server, tmp_path):
    alice, bob = person(), person()
    register(alice, server.base, "alice")
    register(bob, server.base, "bob")
    create_chat(alice, "Weekend hike")
    add_member(alice, "bob")
    expect(chat_button(bob, "Weekend hike")).to_be_visible()

    # The unread badge rises on bob's side while the chat is closed, and clears when he reads it.
    send(alice, "Saturday at 9?")
    expect(chat_button(bob, "Weekend hike")).to_have_accessible_name(re.compile(r"1 unread"))
    send(alice, "I'll bring snacks")
    expect(chat_button(bob, "Weekend hike")).to_have_accessible_name(re.compile(r"2 unread"))
    expect(chat_button(bob, "Weekend hike")).to_contain_text("alice: I'll bring snacks")
    chat_button(bob, "Weekend hike").click()
    expect(message_item(bob, "Saturday at 9?")).to_have_count(1)
    expect(chat_button(bob, "Weekend hike")).not_to_have_accessible_name(re.compile("unread"))

    # Typing shows on the other side, and goes when the message comes.
    bob.get_by_label("Message", exact=True).press_sequentially("Sounds good")
    expect(alice.get_by_text("bob is typing…")).to_be_visible()
    bob.get_by_label("Message", exact=True).press("Enter")
    expect(message_item(alice, "Sounds good")).to_have_count(1)
    expect(alice.get_by_text("bob is typing…")).to_be_hidden()

    # An edit and a delete reach the other side.
    message_item(alice, "Saturday at 9?").get_by_role("button", name="Edit").click()
    alice.get_by_label("Edited text").fill("Saturday at 8?")
    alice.get_by_label("Edited text").press("Enter")
    expect(message_item(bob, "Saturday at 8?")).to_contain_text("(edited)")
    expect(message_item(bob, "Saturday at 9?")).to_have_count(0)
    message_item(alice, "I'll bring snacks").get_by_role("button", name="Delete").click()
    expect(message_item(bob, "I'll bring snacks")).to_have_count(0)
    expect(message_item(alice, "I'll bring snacks")).to_have_count(0)

    # The API's refusals are shown in its own words.
    add_member(alice, "bob")
    expect(alice.get_by_role("alert")).to_have_text("user is already a member of this chat")
    add_member(alice, "nobody")
    expect(alice.get_by_role("alert")).to_have_text("user not found")

    # A second chat, from bob: newest activity first in alice's list, with its badge.
    create_chat(bob, "Book club")
    add_member(bob, "alice")
    send(bob, "Next month: Dune?")
    expect(chat_button(alice, "Book club")).to_have_accessible_name(re.compile(r"1 unread"))
    expect(chats(alice).get_by_role("listitem").first.get_by_role("button")).to_have_accessible_name(re.compile("^Book club"))
    chat_button(bob, "Weekend hike").click()
    for line in ("Should we take the north loop?", "Yes: 12 km, and the view at the top is worth it"):
        send(bob if line.startswith("Should") else alice, line)
    expect(message_item(bob, "Yes: 12 km, and the view at the top is worth it")).to_have_count(1)
    expect(alice.get_by_text("Online: bob")).to_be_visible()
    _screenshots(alice, server, tmp_path)

    # Going offline shows: bob closes his page.
    bob.context.close()
    expect(alice.get_by_text("Nobody else is online")).to_be_visible()
    expect(alice.get_by_role("region", name="Members").get_by_role("listitem").filter(has_text="bob")).to_contain_text("offline")


def _screenshots(alice, server, tmp_path) -> None:
    """Desktop (alice) and phone width (bob, logged in again on a phone)."""
    folder = Path(os.environ.get("CHAT_WEB_SCREENSHOTS") or tmp_path)
    if not folder.is_absolute():
        folder = REPO / folder
    folder.mkdir(parents=True, exist_ok=True)
    alice.get_by_role("button", name="Members", exact=True).click()  # folded, for the picture
    expect(alice.get_by_role("alert")).to_be_hidden()  # the error put away by the next send
    alice.mouse.move(0, 0)
    alice.screenshot(path=str(folder / "desktop.png"))
    alice.get_by_role("button", name="Members", exact=True).click()
    phone = alice.context.browser.new_context(viewport=PHONE, base_url=server.base).new_page()
    try:
        phone.goto("/")
        phone.get_by_label("Name", exact=True).fill("bob")
        phone.get_by_label("Password", exact=True).fill(PASSWORD)
        phone.get_by_role("button", name="Log in", exact=True).click()
        chat_button(phone, "Weekend hike").click()
        expect(message_item(phone, "Sounds good")).to_be_visible()
        expect(chats(phone)).to_be_hidden()  # one pane at a time at phone width
        phone.screenshot(path=str(folder / "phone.png"))
        phone.get_by_role("button", name="Back to chats").click()
        expect(chat_button(phone, "Book club")).to_be_visible()
    finally:
        phone.context.close()


def test_a_socket_killed_mid_conversation_recovers_every_message_once(person, server):
    carol, dave = person(), person()
    register(carol, server.base, "carol")
    register(dave, server.base, "dave")
    create_chat(carol, "Launch")
    add_member(carol, "dave")
    chat_button(dave, "Launch").click()
    send(carol, "go/no-go in 5")
    send(dave, "go")
    expect(message_item(dave, "go/no-go in 5")).to_have_count(1)

    # Dave's laptop drops off the network: his socket dies, and stays down.
    dave.context.set_offline(True)
    dave.evaluate("window.chatApp.socket.ws.close()")
    expect(dave.get_by_role("status")).to_have_text(re.compile("^Offline"))
    for line in ("t-3", "t-2", "t-1"):
        send(carol, line)
    send(dave, "still there?")
    expect(message_item(dave, "still there?")).to_contain_text("Not sent yet")
    dave.context.set_offline(False)
    expect(dave.get_by_role("status")).to_have_text("Online")
    expected = ["go/no-go in 5", "go", "t-3", "t-2", "t-1", "still there?"]
    expect(message_item(carol, "still there?")).to_have_count(1)
    expect(messages(dave).locator(".pending")).to_have_count(0)
    expect(messages(dave).locator(".content")).to_have_text(expected)
    expect(messages(carol).locator(".content")).to_have_text(expected)

    # Killed again while carol keeps talking: it reconnects by itself and resumes.
    dave.evaluate("window.chatApp.socket.ws.close()")
    for line in ("liftoff", "tower cleared"):
        send(carol, line)
    expected += ["liftoff", "tower cleared"]
    expect(messages(dave).locator(".content")).to_have_text(expected)
    expect(dave.get_by_role("status")).to_have_text("Online")

    # A socket that looks open but is dead (a laptop waking from sleep): the
    # probe the client sends then gets no answer, and the socket is replaced.
    dave.evaluate("""() => {
        const socket = window.chatApp.socket;
        socket.ws.onmessage = null;
        socket.ws.send = () => {};
        socket.probe();
    }""")
    send(carol, "anyone awake?")
    expected.append("anyone awake?")
    expect(messages(dave).locator(".content")).to_have_text(expected)
    expect(dave.get_by_role("status")).to_have_text("Online")
    assert _contents(dave) == _contents(carol)


def test_older_pages_load_on_scrolling_up(person, server):
    frank = person()
    register(frank, server.base, "frank")
    with requests.Session() as gina:
        answer = gina.post(server.base + "/api/reg", json={"name": "gina", "password": PASSWORD,
                                                          "email": "gina@example.org"})  # fmt: skip
        assert answer.status_code == 201, answer.text
        chat_id = gina.post(server.base + "/api/chats", json={"title": "Archive"}).json()["id"]
        assert gina.post(f"{server.base}/api/chats/{chat_id}/members", json={"name": "frank"}).status_code == 201
        for number in range(1, 121):
            assert gina.post(f"{server.base}/api/chats/{chat_id}", json={"content": f"note {number}"}).ok
    chat_button(frank, "Archive").click()
    expect(message_item(frank, "note 120")).to_be_visible()
    expect(messages(frank).get_by_role("listitem")).to_have_count(50)
    for shown in (100, 120):
        messages(frank).evaluate("log => { log.scrollTop = 0; }")
        expect(messages(frank).get_by_role("listitem")).to_have_count(shown)
    assert _contents(frank) == [f"note {number}" for number in range(1, 121)]
    expect(frank.get_by_role("button", name="Load older messages")).to_be_hidden()


def _tab_to(page, locator, presses: int = 40) -> None:
    """Presses Tab until `locator` has the focus."""
    for _ in range(presses):
        if locator.evaluate("node => node === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {locator}")


def test_keyboard_only_use_and_the_api_words(person, server):
    page = person()
    page.goto("/")
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    page.keyboard.type("erin")
    for text in (PASSWORD, "erin@example.org"):
        page.keyboard.press("Tab")
        page.keyboard.type(text)
    _tab_to(page, page.get_by_role("button", name="Register", exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_text("Logged in as erin")).to_be_visible()

    _tab_to(page, page.get_by_role("button", name="New chat", exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_label("Title", exact=True)).to_be_focused()
    page.keyboard.type("Notes")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")
    expect(message_item(page, "first line\nsecond line")).to_have_count(1)

    _tab_to(page, page.get_by_role("button", name="Rename", exact=True))
    page.keyboard.press("Enter")
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("Notes to self")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Notes to self")).to_be_visible()
    page.get_by_role("button", name="New chat", exact=True).focus()
    page.keyboard.press("Enter")
    page.keyboard.type("Notes to self")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("you already have a chat with this title")
    _tab_to(page, page.get_by_role("button", name="Leave", exact=True))
    page.keyboard.press("Enter")
    expect(chat_button(page, "Notes to self")).to_have_count(0)

    _tab_to(page, page.get_by_role("button", name="Log out", exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    page.get_by_label("Name", exact=True).fill("erin")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("invalid name or password")
    page.get_by_label("Email", exact=True).fill("erin@example.org")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("name is already taken")


def test_the_page_passes_axe_core(person, server):
    page = person()
    page.goto("/")
    expect(page.get_by_label("Name", exact=True)).to_be_visible()
    _assert_accessible(page)
    register(page, server.base, "harry")
    create_chat(page, "Checks")
    send(page, "one message")
    page.get_by_role("button", name="Members", exact=True).click()
    expect(page.get_by_text("harry (you), owner")).to_be_visible()
    _assert_accessible(page)
    for name in ("Chats", "Messages"):
        assert page.get_by_role("navigation" if name == "Chats" else "log", name=name).count() == 1


def _assert_accessible(page) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def test_the_api_reference_renders_under_its_policy(person):
    page = person()
    page.goto("/api/docs")
    expect(page.get_by_role("heading", name=re.compile("^Chat backend"))).to_be_visible()
    expect(page.get_by_text("/api/chats/{chat_id}/messages/{message_id}").first).to_be_visible()
