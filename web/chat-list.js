// The chat list (the "Chats" navigation): ordered by activity, each with its
// unread badge and last message; and the "New chat" form.

import { el } from "./dom.js";

export class ChatList {
  constructor(store, { onOpen, onCreate }) {
    this.store = store;
    this.onOpen = onOpen;
    this.list = document.getElementById("chat-list");
    this.empty = document.getElementById("no-chats");
    this.items = new Map(); // chat id -> button
    this.openId = null;
    this.typingIn = () => false; // whether someone types in a chat (set by the app)

    const toggle = document.getElementById("new-chat");
    const form = document.getElementById("new-chat-form");
    const title = document.getElementById("new-chat-title");
    toggle.addEventListener("click", () => {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) title.focus();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (await onCreate(title.value)) {
        title.value = "";
        form.hidden = true;
        toggle.setAttribute("aria-expanded", "false");
      }
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        form.hidden = true;
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
    });
  }

  render() {
    const chats = this.store.ordered();
    const focused = document.activeElement;
    for (const [id, item] of this.items) {
      if (!this.store.chats.has(id)) {
        item.parentElement.remove();
        this.items.delete(id);
      }
    }
    chats.forEach((chat, index) => {
      let button = this.items.get(chat.id);
      if (!button) {
        button = el("button", { type: "button", class: "chat-item" });
        button.addEventListener("click", () => this.onOpen(chat.id));
        this.items.set(chat.id, button);
      }
      this.fill(button, chat);
      const row = button.parentElement ?? el("li", {}, button);
      if (this.list.children[index] !== row) this.list.insertBefore(row, this.list.children[index] ?? null);
    });
    this.empty.hidden = chats.length > 0;
    // Moving the focused button in the list blurs it: keyboard users keep their place.
    if (focused && focused !== document.activeElement && document.contains(focused)) focused.focus();
  }

  fill(button, chat) {
    const unread = chat.unread_count ?? 0;
    const preview = chat.last_message === null || chat.last_message === undefined
      ? "No messages yet"
      : `${this.store.name(chat.sender_id)}: ${chat.last_message}`;
    const parts = [el("span", { class: "chat-title" }, chat.title)];
    if (unread > 0) parts.push(el("span", { class: "badge", "aria-label": `${unread} unread` }, String(unread)));
    parts.push(el("span", { class: "preview" }, this.typingIn(chat.id) ? "typing…" : preview));
    button.replaceChildren(...parts);
    button.dataset.chatId = String(chat.id);
    if (chat.id === this.openId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }

  focus(chatId) {
    this.items.get(chatId)?.focus();
  }
}
