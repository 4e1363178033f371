// The open chat's members: who is online (live, through watch_presence),
// adding someone by name, the owner removing someone.

import { api } from "./api.js";
import { el } from "./dom.js";

export class Members {
  constructor(store, socket, { onError }) {
    Object.assign(this, { store, socket, onError });
    this.chatId = null;
    this.ownerId = null;
    this.members = [];
    this.online = new Map(); // user id -> bool, from presence events
    this.panel = document.getElementById("members");
    this.toggle = document.getElementById("members-toggle");
    this.list = document.getElementById("member-list");
    this.line = document.getElementById("chat-presence");
    this.toggle.addEventListener("click", () => this.show(this.panel.hidden));
    const form = document.getElementById("add-member-form");
    const name = document.getElementById("add-member-name");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api.addMember(this.chatId, name.value.trim());
        name.value = "";
        await this.load(this.chatId);
      } catch (error) {
        this.onError(error);
      }
    });
  }

  show(visible) {
    this.panel.hidden = !visible;
    this.toggle.setAttribute("aria-expanded", String(visible));
    if (visible) document.getElementById("add-member-name").focus();
  }

  /** Reads the chat's members and watches their presence. */
  async load(chatId) {
    this.chatId = chatId;
    try {
      const answer = await api.members(chatId);
      if (chatId !== this.chatId) return;
      this.ownerId = answer.owner_id;
      this.members = answer.members;
      for (const member of this.members) {
        this.store.names.set(member.id, member.name);
        this.online.set(member.id, member.online);
      }
      this.socket.watchPresence(this.members.map((member) => member.id));
      this.render();
    } catch (error) {
      if (error.status !== 403 && error.status !== 404) this.onError(error);
    }
  }

  clear() {
    this.chatId = null;
    this.members = [];
    this.list.replaceChildren();
    this.line.textContent = "";
    this.show(false);
  }

  presence(event) {
    this.online.set(event.user_id, event.online);
    this.render();
  }

  render() {
    const me = this.store.me?.id;
    const rows = this.members.map((member) => {
      const online = this.online.get(member.id) === true;
      const label = `${member.name}${member.id === me ? " (you)" : ""}${member.id === this.ownerId ? ", owner" : ""}`;
      const row = el(
        "li",
        { class: online ? "member online" : "member" },
        el("span", { class: "dot", "aria-hidden": "true" }),
        el("span", { class: "member-name" }, label),
        el("span", { class: "member-status" }, online ? "online" : "offline"),
      );
      if (me === this.ownerId && member.id !== me) {
        const remove = el("button", { type: "button", "aria-label": `Remove ${member.name}` }, "Remove");
        remove.addEventListener("click", () => this.remove(member));
        row.append(remove);
      }
      return row;
    });
    this.list.replaceChildren(...rows);
    const others = this.members.filter((member) => member.id !== me && this.online.get(member.id) === true);
    this.line.textContent = others.length
      ? `Online: ${others.map((member) => member.name).join(", ")}`
      : "Nobody else is online";
  }

  async remove(member) {
    try {
      await api.removeMember(this.chatId, member.id);
      await this.load(this.chatId);
    } catch (error) {
      this.onError(error);
    }
  }
}
