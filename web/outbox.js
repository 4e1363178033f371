// Messages on their way: each send carries an Idempotency-Key kept across
// its retries, so a send retried after a dropped connection is stored once.
// Each chat's sends go one at a time, in the order they were written.

import { api } from "./api.js";
import { randomKey } from "./dom.js";

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15000;

export class Outbox {
  /** onChange(chatId): the pending list changed; onSent(chatId, message): stored. */
  constructor({ onChange, onSent, me }) {
    this.onChange = onChange;
    this.onSent = onSent;
    this.me = me;
    this.queues = new Map(); // chat id -> [{key, content, state, error}]
    this.busy = new Set();
    this.wakers = new Set();
    this.wakes = 0; // how many times the connection came back
  }

  pending(chatId) {
    return this.queues.get(chatId) ?? [];
  }

  add(chatId, content) {
    if (!this.queues.has(chatId)) this.queues.set(chatId, []);
    this.queues.get(chatId).push({ key: randomKey(), content, state: "sending", error: null });
    this.onChange(chatId);
    this.pump(chatId);
  }

  /** Tries a failed send again, with its first key. */
  retry(chatId, key) {
    const item = this.pending(chatId).find((candidate) => candidate.key === key);
    if (!item) return;
    item.state = "sending";
    item.error = null;
    this.onChange(chatId);
    this.pump(chatId);
  }

  discard(chatId, key) {
    this.queues.set(chatId, this.pending(chatId).filter((item) => item.key !== key));
    this.onChange(chatId);
    this.pump(chatId);
  }

  /** The connection is back: waiting sends go now. */
  wake() {
    this.wakes += 1;
    for (const waker of [...this.wakers]) waker();
  }

  clear() {
    this.queues.clear();
    this.wake();
  }

  async pump(chatId) {
    if (this.busy.has(chatId)) return;
    this.busy.add(chatId);
    try {
      let attempt = 0;
      for (;;) {
        const item = this.pending(chatId)[0];
        if (!item || item.state === "failed") return;
        const wakes = this.wakes;
        try {
          const answer = await api.send(chatId, item.content, item.key);
          this.queues.set(chatId, this.pending(chatId).filter((other) => other !== item));
          attempt = 0;
          const message = { id: answer.id, sender_id: this.me().id, time: new Date().toISOString(), content: item.content };
          this.onSent(chatId, message);
          this.onChange(chatId);
        } catch (error) {
          item.error = error.message;
          if (!retryable(error)) {
            item.state = "failed";
            this.onChange(chatId);
            return;
          }
          item.state = "waiting";
          this.onChange(chatId);
          let delay = error.retryAfterSecs
            ? error.retryAfterSecs * 1000
            : Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt++);
          // The connection came back while this attempt was failing: go again now.
          if (this.wakes !== wakes && error.status === 0) delay = 0;
          await this.sleep(delay);
          if (!this.pending(chatId).includes(item)) continue;
          item.state = "sending";
          this.onChange(chatId);
        }
      }
    } finally {
      this.busy.delete(chatId);
    }
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const waker = () => {
        clearTimeout(timer);
        this.wakers.delete(waker);
        resolve();
      };
      const timer = setTimeout(waker, ms);
      this.wakers.add(waker);
    });
  }
}

/** Worth sending again with the same key: the server was not reached, or was busy. */
function retryable(error) {
  return error.status === 0 || error.status === 429 || error.status >= 500;
}
