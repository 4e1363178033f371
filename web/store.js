// What the client knows: the user's chats (summaries, unread counts) and the
// messages it holds of each, kept by message id so nothing shows twice.

export class Store {
  constructor() {
    this.me = null; // {id, name}
    this.chats = new Map(); // chat id -> chat (a summary plus what is held)
    this.names = new Map(); // user id -> name
  }

  clear() {
    this.me = null;
    this.chats.clear();
    this.names.clear();
  }

  /** Takes the chat list as GET /api/chats gives it; drops chats not in it. */
  setSummaries(summaries) {
    const seen = new Set();
    for (const summary of summaries) {
      seen.add(summary.id);
      const chat = this.chats.get(summary.id) ?? newChat();
      this.chats.set(summary.id, Object.assign(chat, summary));
    }
    for (const id of [...this.chats.keys()]) if (!seen.has(id)) this.chats.delete(id);
  }

  /** Chats by activity: newest message (else creation) first, ties by higher id. */
  ordered() {
    const activity = (chat) => chat.last_message_time ?? chat.created_at ?? "";
    return [...this.chats.values()].sort((a, b) => activity(b).localeCompare(activity(a)) || b.id - a.id);
  }

  /** A chat's held messages, oldest first. */
  messages(chatId) {
    const chat = this.chats.get(chatId);
    return chat ? [...chat.messages.values()].sort((a, b) => a.id - b.id) : [];
  }

  /** Merges a history page; an event seen already (an edit, a delete) wins over it. */
  mergePage(chatId, page, { older = false } = {}) {
    const chat = this.chats.get(chatId);
    if (!chat) return;
    for (const message of page) {
      if (chat.deleted.has(message.id)) continue;
      const held = chat.messages.get(message.id);
      if (held && (held.edited_at ?? "") > (message.edited_at ?? "")) continue;
      chat.messages.set(message.id, message);
    }
    if (older || !chat.loaded) {
      const ids = page.map((m) => m.id);
      if (ids.length) chat.oldest = Math.min(chat.oldest ?? Infinity, ...ids);
    }
    chat.loaded = true;
    chat.loading = false;
  }

  /** A history read starts: from now on the chat's events are held too. */
  loading(chatId) {
    const chat = this.chats.get(chatId);
    if (chat) chat.loading = true;
  }

  /** Forgets a chat's messages (before re-reading them). */
  dropMessages(chatId) {
    const chat = this.chats.get(chatId);
    if (!chat) return;
    chat.messages.clear();
    chat.deleted.clear();
    chat.loaded = false;
    chat.loading = false;
    chat.oldest = null;
    chat.complete = false;
  }

  /** Applies a chat event; returns the chat it changed, if the client holds it.
   * Messages are held only for chats read (or being read) from history: the
   * others keep their summary, and their history is read when opened. */
  apply(event) {
    const chat = this.chats.get(event.chat_id);
    if (!chat) return null;
    switch (event.type) {
      case "message":
        this.received(chat, event.message);
        break;
      case "message_edited":
        if (holds(chat) && !chat.deleted.has(event.message.id)) chat.messages.set(event.message.id, event.message);
        if (event.message.id === chat.last_message_id) {
          chat.last_message = event.message.content;
          chat.last_message_edited_at = event.message.edited_at;
        }
        break;
      case "message_deleted":
        this.deleted(chat, event.message_id);
        break;
      case "chat_renamed":
        chat.title = event.title;
        break;
      case "read":
        chat.last_read_id = Math.max(chat.last_read_id ?? 0, event.last_read_id);
        chat.unread_count = event.unread_count;
        break;
      default:
        break;
    }
    return chat;
  }

  received(chat, message) {
    if (chat.deleted.has(message.id)) return;
    if (holds(chat)) chat.messages.set(message.id, message);
    if (message.id >= (chat.last_message_id ?? 0)) {
      chat.last_message = message.content;
      chat.last_message_id = message.id;
      chat.last_message_time = message.time;
      chat.last_message_edited_at = null;
      chat.sender_id = message.sender_id;
    }
    if (message.sender_id === this.me?.id) {
      // Sending moves the sender's read marker to their message.
      chat.last_read_id = Math.max(chat.last_read_id ?? 0, message.id);
      chat.unread_count = 0;
    } else if (message.id > (chat.last_read_id ?? 0)) {
      chat.unread_count = (chat.unread_count ?? 0) + 1;
    }
  }

  deleted(chat, messageId) {
    const message = chat.messages.get(messageId);
    chat.messages.delete(messageId);
    if (holds(chat)) chat.deleted.add(messageId);
    if (message && message.sender_id !== this.me?.id && messageId > (chat.last_read_id ?? 0)) {
      chat.unread_count = Math.max(0, (chat.unread_count ?? 0) - 1);
    }
    if (messageId === chat.last_message_id) {
      const newest = this.messages(chat.id).at(-1);
      chat.last_message = newest?.content ?? null;
      chat.last_message_id = newest?.id ?? null;
      chat.last_message_time = newest?.time ?? null;
      chat.sender_id = newest?.sender_id ?? null;
      chat.last_message_edited_at = newest?.edited_at ?? null;
    }
  }

  /** The newest message id held for a chat (0: none). */
  newestId(chatId) {
    const chat = this.chats.get(chatId);
    return chat ? Math.max(0, ...chat.messages.keys()) : 0;
  }

  name(userId) {
    if (userId === this.me?.id) return this.me.name;
    return this.names.get(userId) ?? `user ${userId}`;
  }
}

function newChat() {
  // loaded: the newest page was read (loading: is being read); oldest: the
  // smallest id held from history; complete: no older page exists.
  return { messages: new Map(), deleted: new Set(), loaded: false, loading: false, oldest: null, complete: false };
}

function holds(chat) {
  return chat.loaded || chat.loading;
}
