"""Driving the web client in Chromium with Playwright, by accessible names."""

import os
import re
import shutil
from pathlib import Path

WAIT_MS = 10_000  # the longest any one expectation waits
PASSWORD = "correct horse battery"


def find_chromium() -> tuple[str | None, str]:
    """(executable, "") for a Chromium on this machine, else (None, why not):
    Debian's `chromium` first, then the one `playwright install` fetches."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, "playwright is not installed (pip install -r requirements-dev.txt)"
    for candidate in (os.environ.get("CHAT_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate, ""
    with sync_playwright() as playwright:
        own = playwright.chromium.executable_path
    if own and Path(own).is_file():
        return own, ""
    return None, "no Chromium found: apt-get install chromium (or playwright install chromium)"


def register(page, base: str, name: str) -> None:
    """Opens the page and registers `name` through the form."""
    page.goto(base + "/")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Email", exact=True).fill(f"{name}@example.org")
    page.get_by_role("button", name="Register", exact=True).click()
    page.get_by_text(f"Logged in as {name}").wait_for(timeout=WAIT_MS)


def chats(page):
    return page.get_by_role("navigation", name="Chats")


def chat_button(page, title: str):
    return chats(page).get_by_role("button", name=re.compile(rf"^{re.escape(title)}\b"))


def messages(page):
    return page.get_by_role("log", name="Messages")


def message_item(page, text: str):
    """The list item of the message whose text is exactly `text`."""
    return messages(page).get_by_role("listitem").filter(has=page.get_by_text(text, exact=True))


def create_chat(page, title: str) -> None:
    page.get_by_role("button", name="New chat", exact=True).click()
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_role("button", name="Create", exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=WAIT_MS)


def add_member(page, name: str) -> None:
    members = page.get_by_role("button", name="Members", exact=True)
    if members.get_attribute("aria-expanded") != "true":
        members.click()
    page.get_by_label("Add member", exact=True).fill(name)
    page.get_by_role("button", name="Add", exact=True).click()


def send(page, text: str) -> None:
    """Types a message and sends it with Enter."""
    field = page.get_by_label("Message", exact=True)
    field.fill(text)
    field.press("Enter")
