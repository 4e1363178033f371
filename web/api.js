// The HTTP API: one fetch wrapper, whose errors carry the API's own words.

export class ApiError extends Error {
  constructor(status, message, retryAfterSecs = null) {
    super(message);
    this.status = status; // 0: the server could not be reached
    this.retryAfterSecs = retryAfterSecs;
  }
}

let onUnauthorized = () => {};

/** Called with the error whenever an answer is 401 (the session is over). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/** The JSON answer of a request; throws ApiError with the API's `error` text. */
export async function request(method, path, { body = null, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin", cache: "no-store" };
  if (body !== null) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "cannot reach the server");
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const message = payload && typeof payload.error === "string" ? payload.error : `HTTP ${response.status}`;
    const retry = Number(response.headers.get("Retry-After"));
    const error = new ApiError(response.status, message, Number.isFinite(retry) && retry > 0 ? retry : null);
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  return payload;
}

const chatPath = (chatId) => `/api/chats/${encodeURIComponent(chatId)}`;

export const api = {
  register: (name, password, email) => request("POST", "/api/reg", { body: { name, password, email } }),
  login: (name, password) => request("POST", "/api/login", { body: { name, password } }),
  logout: () => request("POST", "/api/logout"),
  user: (userId) => request("GET", `/api/user/${encodeURIComponent(userId)}`),
  chats: () => request("GET", "/api/chats"),
  createChat: (title) => request("POST", "/api/chats", { body: { title } }),
  renameChat: (chatId, title) => request("PUT", chatPath(chatId), { body: { title } }),
  leaveChat: (chatId) => request("DELETE", `/api/chats?chat_id=${encodeURIComponent(chatId)}`),

  /** A page of history, oldest first: the newest `limit`, or before/after an id. */
  history(chatId, { before = null, after = null, limit = 50 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before !== null) query.set("before", String(before));
    if (after !== null) query.set("after", String(after));
    return request("GET", `${chatPath(chatId)}?${query}`);
  },
  send: (chatId, content, idempotencyKey) =>
    request("POST", chatPath(chatId), { body: { content }, headers: { "Idempotency-Key": idempotencyKey } }),
  edit: (chatId, messageId, content) =>
    request("PUT", `${chatPath(chatId)}/messages/${encodeURIComponent(messageId)}`, { body: { content } }),
  remove: (chatId, messageId) => request("DELETE", `${chatPath(chatId)}/messages/${encodeURIComponent(messageId)}`),
  markRead: (chatId, messageId) => request("POST", `${chatPath(chatId)}/read`, { body: { message_id: messageId } }),
  members: (chatId) => request("GET", `${chatPath(chatId)}/members`),
  addMember: (chatId, name) => request("POST", `${chatPath(chatId)}/members`, { body: { name } }),
  removeMember: (chatId, userId) =>
    request("DELETE", `${chatPath(chatId)}/members?user_id=${encodeURIComponent(userId)}`),
};
