// The page: logging in, and wiring the chat list, the open chat and the
// members panel to the store and the live socket.

import { api, setUnauthorizedHandler } from "./api.js";
import { ChatList } from "./chat-list.js";
import { Conversation } from "./conversation.js";
import { Members } from "./members.js";
import { Outbox } from "./outbox.js";
import { LiveSocket } from "./socket.js";
import { Store } from "./store.js";

const ERROR_SHOWN_MS = 10000;
const $ = (id) => document.getElementById(id);

const store = new Store();
const socket = new LiveSocket({
  onEvent: (event) => handleEvent(event),
  onReady: (userId) => ready(userId),
  onResync: (chatId) => resync(chatId),
  onStatus: (state, retryInMs) => showStatus(state, retryInMs),
  onSessionEnded: () => loggedOut(),
  onTrouble: () => api.chats().catch(() => {}), // a 401 here means the session is over
});
const outbox = new Outbox({
  me: () => store.me,
  onChange: (chatId) => {
    if (chatId === conversation.chatId) conversation.render({ toBottom: true });
  },
  onSent: (chatId, message) => {
    const chat = store.chats.get(chatId);
    if (chat && !chat.messages.has(message.id) && !chat.deleted.has(message.id)) store.received(chat, message);
    chatList.render();
  },
});
const chatList = new ChatList(store, { onOpen: (chatId) => openChat(chatId), onCreate: (title) => createChat(title) });
const conversation = new Conversation(store, socket, outbox, {
  onError: (error) => showError(error),
  onChanged: () => chatList.render(),
  onNamesNeeded: (ids) => lookUpNames(ids),
});
const members = new Members(store, socket, { onError: (error) => showError(error) });
chatList.typingIn = (chatId) => conversation.typists(chatId).length > 0;
// For debugging in the console, and for the browser tests (which close the socket).
window.chatApp = { store, socket, outbox };

let readyOnce = false;
let errorTimer = null;
const lookingUp = new Set();

function showError(error) {
  if (error.status === 401) return; // the login form says it
  $("error").textContent = error.message;
  $("error").hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => ($("error").hidden = true), ERROR_SHOWN_MS);
}

function showStatus(state, retryInMs) {
  const words = {
    connecting: "Connecting…",
    online: "Online",
    offline: `Offline: reconnecting in ${Math.ceil((retryInMs ?? 0) / 1000)} s`,
  };
  $("connection").textContent = words[state];
  $("connection").dataset.state = state;
}

function showAuth() {
  $("chat-view").hidden = true;
  $("logout").hidden = true;
  $("me").textContent = "";
  $("connection").textContent = "";
  $("auth-view").hidden = false;
  $("auth-name").focus();
}

async function start() {
  let answer;
  try {
    answer = await api.chats();
  } catch (error) {
    if (error.status === 401) showAuth();
    else {
      showError(error);
      setTimeout(start, 3000);
    }
    return;
  }
  readyOnce = false;
  takeSummaries(answer.chats);
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  $("logout").hidden = false;
  socket.start();
}

function takeSummaries(summaries) {
  store.setSummaries(summaries);
  for (const chat of summaries) socket.track(chat.id, chat.seq, chat.epoch);
  lookUpNames(summaries.map((chat) => chat.sender_id).filter((id) => id !== null));
  if (conversation.chatId !== null && !store.chats.has(conversation.chatId)) closeChat();
  chatList.render();
  conversation.render();
}

async function refreshChats() {
  try {
    takeSummaries((await api.chats()).chats);
  } catch (error) {
    showError(error);
  }
}

async function ready(userId) {
  outbox.wake();
  if (readyOnce) refreshChats(); // chats joined while away are learnt from the list
  readyOnce = true;
  if (store.me?.id === userId) return;
  store.me = { id: userId, name: `user ${userId}` };
  try {
    store.me.name = (await api.user(userId)).user.name;
  } catch (error) {
    showError(error);
  }
  $("me").textContent = `Logged in as ${store.me.name}`;
  chatList.render();
  conversation.render();
  members.render();
}

function handleEvent(event) {
  const me = store.me?.id;
  switch (event.type) {
    case "chat_created":
      refreshChats();
      return;
    case "member_added":
      if (event.user_id === me || !store.chats.has(event.chat_id)) refreshChats();
      else if (event.chat_id === conversation.chatId) members.load(event.chat_id);
      return;
    case "member_removed":
      if (event.user_id === me) {
        forgetChat(event.chat_id);
      } else if (event.chat_id === conversation.chatId) members.load(event.chat_id);
      return;
    case "typing":
      if (event.user_id !== me && store.chats.has(event.chat_id)) {
        conversation.typed(event.chat_id, event.user_id);
        chatList.render();
      }
      return;
    case "presence":
      members.presence(event);
      return;
    default:
      chatEvent(event);
  }
}

function chatEvent(event) {
  const chat = store.apply(event);
  if (!chat) {
    if (event.chat_id !== undefined && event.seq !== undefined) refreshChats();
    return;
  }
  if (event.type === "message") {
    conversation.stopTyping(chat.id, event.message.sender_id);
    lookUpNames([event.message.sender_id]);
  }
  if (event.type === "message_deleted" && !chat.loaded) refreshChats(); // the list's "last message" may be older
  if (chat.id === conversation.chatId) {
    conversation.render();
    if (event.type === "message") conversation.markRead();
  }
  chatList.render();
}

/** Re-reads one chat (its log could not serve what was missed), or every chat. */
async function resync(chatId) {
  let summaries;
  try {
    summaries = (await api.chats()).chats;
  } catch (error) {
    showError(error);
    return;
  }
  const chats = chatId === null ? summaries : summaries.filter((chat) => chat.id === chatId);
  if (chatId !== null && chats.length === 0) forgetChat(chatId);
  for (const summary of chats) store.dropMessages(summary.id);
  takeSummaries(summaries);
  for (const summary of chats) {
    socket.reset(summary.id, summary.seq, summary.epoch);
    if (summary.id === conversation.chatId) conversation.loadNewest(summary.id);
  }
}

function lookUpNames(ids) {
  for (const id of ids) {
    if (store.names.has(id) || lookingUp.has(id) || id === store.me?.id) continue;
    lookingUp.add(id);
    api
      .user(id)
      .then((answer) => {
        store.names.set(id, answer.user.name);
        chatList.render();
        conversation.render();
      })
      .catch(() => store.names.set(id, `user ${id}`))
      .finally(() => lookingUp.delete(id));
  }
}

function openChat(chatId) {
  chatList.openId = chatId;
  chatList.render();
  $("chat-view").classList.add("chat-open");
  $("no-chat-open").hidden = true;
  $("rename-form").hidden = true;
  members.clear();
  members.load(chatId);
  conversation.open(chatId);
  $("message-input").focus();
}

function closeChat() {
  const chatId = conversation.chatId;
  conversation.close();
  members.clear();
  chatList.openId = null;
  $("chat-view").classList.remove("chat-open");
  $("no-chat-open").hidden = false;
  chatList.render();
  if (chatId !== null) chatList.focus(chatId);
}

function forgetChat(chatId) {
  socket.forget(chatId);
  store.chats.delete(chatId);
  if (chatId === conversation.chatId) closeChat();
  chatList.render();
}

async function createChat(title) {
  try {
    const answer = await api.createChat(title.trim());
    await refreshChats();
    openChat(answer.id);
    return true;
  } catch (error) {
    showError(error);
    return false;
  }
}

function loggedOut() {
  socket.stop();
  outbox.clear();
  closeChat();
  store.clear();
  chatList.render();
  showAuth();
}

function wirePage() {
  setUnauthorizedHandler(() => {
    if (!$("chat-view").hidden) loggedOut();
  });
  window.addEventListener("online", () => outbox.wake());
  // A new attempt at anything puts the last error away.
  document.addEventListener("submit", () => ($("error").hidden = true), true);
  $("auth-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const [name, password, email] = ["auth-name", "auth-password", "auth-email"].map((id) => $(id).value);
    try {
      if (event.submitter?.value === "register") await api.register(name, password, email);
      else await api.login(name, password);
      $("auth-password").value = "";
      $("error").hidden = true;
      await start();
    } catch (error) {
      showError(error);
    }
  });
  $("logout").addEventListener("click", async () => {
    try {
      await api.logout();
    } catch (error) {
      showError(error);
    }
    loggedOut();
  });
  $("back").addEventListener("click", closeChat);
  $("rename").addEventListener("click", () => toggleRename(true));
  $("rename-cancel").addEventListener("click", () => toggleRename(false));
  $("rename-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.renameChat(conversation.chatId, $("rename-title").value.trim());
      toggleRename(false);
    } catch (error) {
      showError(error);
    }
  });
  $("leave").addEventListener("click", async () => {
    const chatId = conversation.chatId;
    try {
      await api.leaveChat(chatId);
      forgetChat(chatId);
    } catch (error) {
      showError(error);
    }
  });
}

function toggleRename(visible) {
  $("rename-form").hidden = !visible;
  $("rename").setAttribute("aria-expanded", String(visible));
  if (visible) {
    $("rename-title").value = store.chats.get(conversation.chatId)?.title ?? "";
    $("rename-title").focus();
  } else $("rename").focus();
}

wirePage();
start();
