// The few calls the page makes to oO's API, and the two ways they fail.

/** The server answered with an error body: {"error": {"code", "message", "target"}}. */
export class ApiError extends Error {
  constructor(status, code, message, target) {
    super(message);
    this.status = status;
    this.code = code;
    this.target = target;
  }

  /** Sending the same request again cannot succeed (a 4xx other than timeouts and limits). */
  get permanent() {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

/** The request never got an answer: offline, or the server is not running. */
export class Unreachable extends Error {}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The session's CSRF token: the server sets it in a readable cookie next to the HttpOnly
 * session cookie, and a request that changes something echoes it in X-CSRF-Token (another site
 * can make the browser send the cookies, but cannot read this one to copy it into a header).
 */
function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === "oo_csrf") return decodeURIComponent(value.join("="));
  }
  return null;
}

async function call(method, path, body) {
  const init = { method, cache: "no-store", credentials: "same-origin", headers: {} };
  if (!SAFE_METHODS.has(method)) {
    const token = csrfToken();
    if (token) init.headers["X-CSRF-Token"] = token;
  }
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new Unreachable(error.message);
  }
  if (!response.ok) {
    let detail = {};
    try {
      detail = (await response.json()).error ?? {};
    } catch {
      // Not our error body (a proxy in between, say): the status is all there is.
    }
    throw new ApiError(
      response.status,
      detail.code ?? `HTTP${response.status}`,
      detail.message ?? response.statusText,
      detail.target,
    );
  }
  return response;
}

/**
 * One tip for now. Resolves to {decision} or, during quiet hours, to {quiet: {nextAt, retryAfter}}.
 * With `deferred`, the decision waits for `activate` before its reward window starts.
 */
export async function recommend(deferred = false) {
  const response = await call("POST", "/v1/recommend", { defer_activation: deferred });
  if (response.status === 204) {
    const retryAfter = Number(response.headers.get("Retry-After")) || 60;
    const header = response.headers.get("X-Next-Tip-At");
    const nextAt = header ? new Date(header) : new Date(Date.now() + retryAfter * 1000);
    return { quiet: { nextAt, retryAfter } };
  }
  return { decision: await response.json() };
}

/** The signed-in person's profile; an ApiError with status 401 when nobody is signed in. */
export async function me() {
  return (await call("GET", "/v1/me")).json();
}

/** {local, providers: [{name, label, login_url}]}: how to sign in (nothing to do when local). */
export async function signInOptions() {
  return (await call("GET", "/auth/providers")).json();
}

/** End the web session on the server (the cookie stops working everywhere). */
export async function signOut() {
  await call("POST", "/auth/logout");
}

/** Change the profile: {timezone, quiet_hours, interests, kinds}; resolves to the new profile. */
export async function updateMe(fields) {
  return (await call("PATCH", "/v1/me", fields)).json();
}

/** [{provider, status, configured, connect_url, ...}]: this person's integrations. */
export async function integrations() {
  return (await call("GET", "/v1/integrations")).json().then((body) => body.integrations);
}

/** Revoke and forget one integration's token (204 even when it was not connected). */
export async function disconnect(provider) {
  await call("DELETE", `/v1/integrations/${encodeURIComponent(provider)}`);
}

/** One of this person's tips by event id (a pushed tip opens on it): the recommend shape. */
export async function decision(eventId) {
  return (await call("GET", `/v1/decisions/${encodeURIComponent(eventId)}`)).json();
}

/** The deployment's VAPID public key (base64url), for pushManager.subscribe. */
export async function pushKey() {
  return (await call("GET", "/v1/push/key")).json().then((body) => body.public_key);
}

/** Keep this browser's PushSubscription (its JSON) on the server; resolves to the device. */
export async function subscribePush(subscription) {
  return (await call("POST", "/v1/push/subscriptions", subscription)).json();
}

/** Forget one device (its id from subscribePush). */
export async function unsubscribePush(id) {
  await call("DELETE", `/v1/push/subscriptions/${encodeURIComponent(id)}`);
}

/** "This is how a tip will arrive", to every device of this person. */
export async function pushTest() {
  return (await call("POST", "/v1/push/test")).json();
}

/** Send a request kept in the outbox: {path, body}. */
export async function send(request) {
  await call("POST", request.path, request.body);
}

export const requests = {
  activate: (eventId) => ({
    key: `activate:${eventId}`,
    path: `/v1/decisions/${encodeURIComponent(eventId)}/activate`,
  }),
  feedback: (eventId, reaction) => ({
    key: `feedback:${eventId}`,
    path: "/v1/feedback",
    body: { event_id: eventId, reaction },
  }),
  // A pushed tip (or test) was opened from its notification.
  opened: (eventId) => ({
    key: `opened:${eventId}`,
    path: "/v1/push/opened",
    body: { event_id: eventId },
  }),
  // When the check-in waits offline, it still says when it happened.
  mood: (value, at = new Date()) => ({
    key: `mood:${at.getTime()}`,
    path: "/v1/signals",
    body: { type: "mood", value, occurred_at: at.toISOString(), source: "web" },
  }),
};
