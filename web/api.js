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

async function call(method, path, body) {
  const init = { method, cache: "no-store", credentials: "same-origin", headers: {} };
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
  // When the check-in waits offline, it still says when it happened.
  mood: (value, at = new Date()) => ({
    key: `mood:${at.getTime()}`,
    path: "/v1/signals",
    body: { type: "mood", value, occurred_at: at.toISOString(), source: "web" },
  }),
};
