// The live connection to /api/ws: reconnects with backoff (and at once when
// the network or the machine comes back), resumes every chat from the last
// seq it applied, and hands each chat's events on once and in seq order.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;
const TICK_MS = 5000;
// A 5 s timer that fires this late means the machine slept (or the tab was
// throttled in the background): the socket may be dead without knowing it,
// so it is probed, and replaced if the probe gets no answer in time.
const SLEEP_GAP_MS = 15000;
const PROBE_TIMEOUT_MS = 5000;

export class LiveSocket {
  /**
   * handlers: onEvent(event) for every event applied, in order;
   * onReady(userId); onResync(chatId or null): re-read that chat (or all);
   * onStatus(state, retryInMs) with state "connecting", "online" or "offline";
   * onSessionEnded(); onTrouble(): the socket keeps failing before `ready`.
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempt = 0;
    this.timer = null;
    this.positions = new Map(); // chat id -> {seq, epoch}: the last event applied
    this.held = new Map(); // chat id -> Map(seq -> event): events past a gap
    this.resumes = new Map(); // request_id -> chat id
    this.watching = [];
    this.requests = 0;
    this.lastTick = Date.now();
    this.probeTimer = null;
    window.addEventListener("online", () => this.check());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.check();
    });
    setInterval(() => this.tick(), TICK_MS);
  }

  /** Follows a chat from `seq` (of `epoch`) unless it is followed already. */
  track(chatId, seq, epoch) {
    if (!this.positions.has(chatId)) this.positions.set(chatId, { seq, epoch });
  }

  /** Starts a chat again from a fresh position (after a 410 or `resync`). */
  reset(chatId, seq, epoch) {
    this.positions.set(chatId, { seq, epoch });
    const held = this.held.get(chatId);
    if (held) for (const heldSeq of [...held.keys()]) if (heldSeq <= seq) held.delete(heldSeq);
    this.drain(chatId);
    if (this.ready) this.resume(chatId);
  }

  forget(chatId) {
    this.positions.delete(chatId);
    this.held.delete(chatId);
  }

  start() {
    this.stopped = false;
    if (!this.ws) this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.probeTimer);
    this.probeTimer = null;
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) ws.close(1000);
    this.positions.clear();
    this.held.clear();
  }

  /** Sends an op if the socket is ready; false if it is not. */
  send(op) {
    if (!this.ready) return false;
    this.ws.send(JSON.stringify(op));
    return true;
  }

  /** Watches these users' presence, now and after every reconnect. */
  watchPresence(userIds) {
    this.watching = [...userIds];
    this.send({ op: "watch_presence", user_ids: this.watching });
  }

  connect() {
    clearTimeout(this.timer);
    clearTimeout(this.probeTimer);
    this.probeTimer = null;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/ws`);
    this.ws = ws;
    this.ready = false;
    this.handlers.onStatus("connecting");
    ws.onmessage = (message) => {
      if (ws === this.ws) this.receive(JSON.parse(message.data));
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.closed(event.code);
    };
  }

  closed(code) {
    this.ws = null;
    this.ready = false;
    if (this.stopped) return;
    if (code === 4001) {
      this.stopped = true;
      this.handlers.onSessionEnded();
      return;
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt) * (0.75 + Math.random() / 4);
    this.attempt += 1;
    if (this.attempt >= 3) this.handlers.onTrouble();
    this.handlers.onStatus("offline", delay);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** The network or the tab is back: connect now if down (rather than at the
   * end of the backoff), else make sure the socket still answers. */
  check() {
    if (this.stopped) return;
    if (!this.ws) {
      this.attempt = 0;
      this.connect();
    } else if (this.ready) this.probe();
  }

  tick() {
    const now = Date.now();
    const late = now - this.lastTick > SLEEP_GAP_MS;
    this.lastTick = now;
    if (late) this.check();
  }

  /** Asks the server something (the presence list again) and replaces the
   * socket if no answer comes in time. */
  probe() {
    if (this.probeTimer !== null) return;
    const requestId = `probe-${++this.requests}`;
    this.probeId = requestId;
    this.send({ op: "watch_presence", user_ids: this.watching, request_id: requestId });
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      const old = this.ws;
      if (!old || this.stopped) return;
      this.ws = null; // its events are ignored from now on
      old.close();
      this.attempt = 0;
      this.connect();
    }, PROBE_TIMEOUT_MS);
  }

  receive(event) {
    switch (event.type) {
      case "ready":
        this.ready = true;
        this.attempt = 0;
        // Resumes first: the server holds each chat's live events until its
        // resume or the socket's first other request (docs/live-events.md).
        for (const chatId of this.positions.keys()) this.resume(chatId);
        this.handlers.onStatus("online");
        this.handlers.onReady(event.user_id);
        if (this.watching.length) this.send({ op: "watch_presence", user_ids: this.watching });
        return;
      case "ack":
        if (this.resumes.has(event.request_id)) this.resumed(event);
        if (event.request_id === this.probeId) {
          clearTimeout(this.probeTimer);
          this.probeTimer = null;
        }
        return;
      case "error":
        this.refused(event);
        return;
      case "resync":
        this.handlers.onResync(event.chat_id ?? null);
        return;
      default:
        if (typeof event.seq === "number" && event.chat_id !== undefined) this.ordered(event);
        else this.handlers.onEvent(event);
    }
  }

  resume(chatId) {
    const position = this.positions.get(chatId);
    const requestId = `resume-${++this.requests}`;
    this.resumes.set(requestId, chatId);
    const op = { op: "resume", chat_id: chatId, since: position.seq, request_id: requestId };
    if (position.epoch) op.epoch = position.epoch;
    this.send(op);
  }

  resumed(ack) {
    const chatId = this.resumes.get(ack.request_id);
    this.resumes.delete(ack.request_id);
    const position = this.positions.get(chatId);
    if (!position) return;
    position.epoch = ack.epoch;
    // Everything up to ack.seq has been sent by now: a gap left is a loss.
    if (position.seq < ack.seq) this.handlers.onResync(chatId);
  }

  refused(error) {
    const chatId = this.resumes.get(error.request_id);
    if (chatId !== undefined) {
      this.resumes.delete(error.request_id);
      // 410: the log cannot serve it; 403/404: no longer ours. Either way, re-read.
      this.handlers.onResync(chatId);
    }
  }

  /** A chat event: applied if it is the next one, held past a gap, dropped if seen. */
  ordered(event) {
    const chatId = event.chat_id;
    const position = this.positions.get(chatId);
    if (!position) {
      // A chat joined while connected: its first event here is member_added.
      this.positions.set(chatId, { seq: event.seq, epoch: null });
      this.handlers.onEvent(event);
      return;
    }
    if (event.seq <= position.seq) return;
    if (event.seq > position.seq + 1) {
      if (!this.held.has(chatId)) this.held.set(chatId, new Map());
      this.held.get(chatId).set(event.seq, event);
      return;
    }
    position.seq = event.seq;
    this.handlers.onEvent(event);
    this.drain(chatId);
  }

  drain(chatId) {
    const held = this.held.get(chatId);
    const position = this.positions.get(chatId);
    while (held && position && held.has(position.seq + 1)) {
      const next = held.get(position.seq + 1);
      held.delete(position.seq + 1);
      position.seq = next.seq;
      this.handlers.onEvent(next);
    }
  }
}
