// The open chat: its history (older pages load on scrolling up), the
// composer with its pending sends, typing, and editing or deleting one's own
// messages.

import { api } from "./api.js";
import { el, shortTime } from "./dom.js";

const PAGE_SIZE = 50;
const NEAR_EDGE_PX = 80;
const TYPING_SHOWN_MS = 5000;
const TYPING_SENT_EVERY_MS = 2500;

export class Conversation {
  constructor(store, socket, outbox, { onError, onChanged, onNamesNeeded }) {
    Object.assign(this, { store, socket, outbox, onError, onChanged, onNamesNeeded });
    this.chatId = null;
    this.items = new Map(); // message id (or pending key) -> li
    this.typing = new Map(); // chat id -> Map(user id -> timer)
    this.lastTypingSent = 0;
    this.loadingOlder = false;
    this.pane = document.getElementById("chat-pane");
    this.log = document.getElementById("messages");
    this.list = document.getElementById("message-list");
    this.older = document.getElementById("older");
    this.input = document.getElementById("message-input");
    this.typingLine = document.getElementById("typing");
    this.wire();
  }

  wire() {
    this.log.addEventListener("scroll", () => {
      if (this.log.scrollTop < NEAR_EDGE_PX) this.loadOlder();
      if (this.nearBottom()) this.markRead();
    });
    this.older.addEventListener("click", () => this.loadOlder());
    const composer = document.getElementById("composer");
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener("input", () => {
      const now = Date.now();
      if (this.chatId !== null && this.input.value && now - this.lastTypingSent > TYPING_SENT_EVERY_MS) {
        this.lastTypingSent = now;
        this.socket.send({ op: "typing", chat_id: this.chatId });
      }
    });
    document.addEventListener("visibilitychange", () => this.markRead());
  }

  async open(chatId) {
    this.chatId = chatId;
    this.items.clear();
    this.list.replaceChildren();
    this.pane.hidden = false;
    this.renderHeader();
    this.render({ toBottom: true });
    const chat = this.store.chats.get(chatId);
    if (chat && !chat.loaded) await this.loadNewest(chatId);
    this.markRead();
  }

  close() {
    this.chatId = null;
    this.pane.hidden = true;
    this.items.clear();
    this.list.replaceChildren();
  }

  /** Reads the newest page again (on opening, and after the log lost track). */
  async loadNewest(chatId) {
    this.store.loading(chatId);
    try {
      const page = await api.history(chatId, { limit: PAGE_SIZE });
      this.store.mergePage(chatId, page.messages);
      const chat = this.store.chats.get(chatId);
      if (chat) chat.complete = page.messages.length < PAGE_SIZE && page.next_before === undefined;
      if (chatId === this.chatId) this.render({ toBottom: true });
    } catch (error) {
      this.onError(error);
    }
  }

  async loadOlder() {
    const chat = this.store.chats.get(this.chatId);
    if (!chat || !chat.loaded || chat.complete || this.loadingOlder || chat.oldest === null) return;
    this.loadingOlder = true;
    const chatId = this.chatId;
    try {
      const page = await api.history(chatId, { before: chat.oldest, limit: PAGE_SIZE });
      this.store.mergePage(chatId, page.messages, { older: true });
      if (page.next_before !== undefined) chat.oldest = Math.min(chat.oldest, page.next_before);
      chat.complete = page.messages.length === 0 || (page.messages.length < PAGE_SIZE && !page.next_before);
      if (chatId === this.chatId) {
        const fromBottom = this.log.scrollHeight - this.log.scrollTop;
        this.render();
        this.log.scrollTop = this.log.scrollHeight - fromBottom; // the reader stays where they were
      }
    } catch (error) {
      this.onError(error);
    } finally {
      this.loadingOlder = false;
    }
  }

  send() {
    const content = this.input.value;
    if (this.chatId === null || !content.trim()) return;
    this.input.value = "";
    this.outbox.add(this.chatId, content);
    this.render({ toBottom: true });
  }

  nearBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < NEAR_EDGE_PX;
  }

  /** Moves the read marker to the newest message, while the chat is on screen. */
  markRead() {
    const chat = this.store.chats.get(this.chatId);
    if (!chat || document.hidden || !this.nearBottom()) return;
    const newest = this.store.newestId(chat.id);
    if (newest <= (chat.last_read_id ?? 0) && !chat.unread_count) return;
    chat.last_read_id = Math.max(chat.last_read_id ?? 0, newest);
    chat.unread_count = 0;
    this.onChanged();
    api.markRead(chat.id, chat.last_read_id).catch((error) => {
      if (error.status !== 0) this.onError(error);
    });
  }

  renderHeader() {
    const chat = this.store.chats.get(this.chatId);
    if (chat) document.getElementById("chat-title").textContent = chat.title;
  }

  /** Brings the log in line with the store and the outbox, reusing items by id. */
  render({ toBottom = false } = {}) {
    if (this.chatId === null) return;
    const chat = this.store.chats.get(this.chatId);
    if (!chat) return;
    const stick = toBottom || this.nearBottom();
    const wanted = [];
    const unknown = new Set();
    for (const message of this.store.messages(this.chatId)) {
      if (!this.store.names.has(message.sender_id) && message.sender_id !== this.store.me?.id) {
        unknown.add(message.sender_id);
      }
      wanted.push([`m${message.id}`, message, null]);
    }
    for (const item of this.outbox.pending(this.chatId)) wanted.push([`p${item.key}`, null, item]);
    const keep = new Set(wanted.map(([key]) => key));
    for (const [key, li] of this.items) {
      if (!keep.has(key) && !li.classList.contains("editing")) {
        li.remove();
        this.items.delete(key);
      }
    }
    wanted.forEach(([key, message, pending], index) => {
      let li = this.items.get(key);
      if (!li) {
        li = el("li", { class: "message" });
        this.items.set(key, li);
      }
      if (!li.classList.contains("editing")) {
        if (message) this.fillMessage(li, message);
        else this.fillPending(li, pending);
      }
      if (this.list.children[index] !== li) this.list.insertBefore(li, this.list.children[index] ?? null);
    });
    this.older.hidden = !chat.loaded || chat.complete;
    this.renderHeader();
    this.renderTyping();
    if (unknown.size) this.onNamesNeeded([...unknown]);
    if (stick) this.log.scrollTop = this.log.scrollHeight;
  }

  fillMessage(li, message) {
    const mine = message.sender_id === this.store.me?.id;
    li.className = mine ? "message mine" : "message";
    li.dataset.messageId = String(message.id);
    const meta = el(
      "p",
      { class: "meta" },
      el("span", { class: "sender" }, this.store.name(message.sender_id)),
      " ",
      el("time", { datetime: message.time }, shortTime(message.time)),
      message.edited_at ? el("span", { class: "edited" }, " (edited)") : null,
    );
    const parts = [meta, el("p", { class: "content" }, message.content)];
    if (mine) {
      const edit = el("button", { type: "button" }, "Edit");
      const remove = el("button", { type: "button" }, "Delete");
      edit.addEventListener("click", () => this.edit(li, message));
      remove.addEventListener("click", () => this.remove(message));
      parts.push(el("div", { class: "actions" }, edit, remove));
    }
    li.replaceChildren(...parts);
  }

  fillPending(li, item) {
    li.className = `message mine pending ${item.state}`;
    const words = { sending: "Sending…", waiting: "Not sent yet, retrying…", failed: "Not sent" };
    const status = el("p", { class: "pending-status" }, words[item.state]);
    if (item.error) status.append(`: ${item.error}`);
    const parts = [el("p", { class: "content" }, item.content), status];
    if (item.state === "failed") {
      const retry = el("button", { type: "button" }, "Retry");
      const discard = el("button", { type: "button" }, "Discard");
      retry.addEventListener("click", () => this.outbox.retry(this.chatId, item.key));
      discard.addEventListener("click", () => this.outbox.discard(this.chatId, item.key));
      parts.push(el("div", { class: "actions" }, retry, discard));
    }
    li.replaceChildren(...parts);
  }

  edit(li, message) {
    li.classList.add("editing");
    const field = el("textarea", { "aria-label": "Edited text", rows: "2", maxlength: "4000" });
    field.value = message.content;
    const save = el("button", { type: "submit" }, "Save");
    const cancel = el("button", { type: "button" }, "Cancel");
    const form = el("form", { class: "edit-form" }, field, el("div", { class: "actions" }, save, cancel));
    const done = () => {
      li.classList.remove("editing");
      this.render();
      li.querySelector("button")?.focus();
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        if (field.value !== message.content) await api.edit(this.chatId, message.id, field.value);
        done();
      } catch (error) {
        this.onError(error);
      }
    });
    field.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape") done();
    });
    cancel.addEventListener("click", done);
    li.replaceChildren(li.firstChild, form);
    field.focus();
  }

  async remove(message) {
    try {
      await api.remove(this.chatId, message.id);
      this.input.focus();
    } catch (error) {
      this.onError(error);
    }
  }

  /** Someone types in a chat: shown for a few seconds, or until their message. */
  typed(chatId, userId) {
    if (!this.typing.has(chatId)) this.typing.set(chatId, new Map());
    const users = this.typing.get(chatId);
    clearTimeout(users.get(userId));
    users.set(userId, setTimeout(() => this.stopTyping(chatId, userId), TYPING_SHOWN_MS));
    this.renderTyping();
  }

  stopTyping(chatId, userId) {
    const users = this.typing.get(chatId);
    if (!users || !users.has(userId)) return;
    clearTimeout(users.get(userId));
    users.delete(userId);
    this.renderTyping();
    this.onChanged();
  }

  typists(chatId) {
    return [...(this.typing.get(chatId)?.keys() ?? [])];
  }

  renderTyping() {
    const names = this.typists(this.chatId).map((id) => this.store.name(id));
    const text = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
    if (this.typingLine.textContent !== text) this.typingLine.textContent = text;
  }
}
