// The black page: one tip, a swipe, the next tip already waiting.

import {
  ApiError,
  decision as decisionById,
  me,
  recommend,
  requests,
  send,
  signInOptions,
  signOut,
} from "./api.js";
import { showConnections, syncTimezone } from "./connections.js";
import { Outbox } from "./outbox.js";
import { forget, recall, remember } from "./storage.js";
import { noteReaction, offer as offerPush, sync as syncPush } from "./push.js";
import { enter, flyOut, place, reducedMotion, still, swipeable } from "./swipe.js";

const CURRENT_KEY = "oo.current";
const MOOD_KEY = "oo.mood";
// A tip shown this recently comes back on reload (or return) instead of a new one.
const REUSE_MS = 20 * 60_000;
// A prefetched tip older than this was chosen for another moment: ask again instead.
const PREFETCH_FRESH_MS = 15 * 60_000;
// A mood check-in counts this long (the server's context reads six hours back).
const MOOD_MS = 6 * 60 * 60_000;
// The breathing dot shows only when the next tip is slow to come.
const WAITING_MS = 400;
// The next tip starts to appear once the last one is on its way out.
const HANDOFF_MS = 60;
const FIRST_RETRY_MS = 5_000;
const LAST_RETRY_MS = 60_000;

const KEYS = { ArrowRight: "right", ArrowLeft: "left", ArrowUp: "up" };
const POSITIVE = { todo: "done", advice: "useful" };
const REACTIONS = { left: "dismiss", up: "later" };
const CONFIRMATIONS = {
  done: "Done. ",
  useful: "Useful. ",
  dismiss: "Not for me. ",
  later: "Later. ",
};
const NO_HINTS = { left: 0, right: 0, up: 0 };

const $ = (id) => document.getElementById(id);
const ui = {
  deck: $("deck"),
  card: $("card"),
  meta: $("meta"),
  title: $("title"),
  body: $("body"),
  hintRight: $("hint-right"),
  notice: $("notice"),
  noticeText: $("notice-text"),
  noticeDetail: $("notice-detail"),
  noticeAction: $("notice-action"),
  waiting: $("waiting"),
  status: $("status"),
  announce: $("announce"),
  actions: $("actions"),
  positive: $("positive"),
  mood: $("mood"),
  account: $("account"),
};

let current = null; // {decision, shownAt}: the tip on screen
let prefetch = null; // Promise of the next outcome: {decision, at} | {quiet} | {failure}
let advancing = null;
let wake = 0;
let retryMs = FIRST_RETRY_MS;
let quietUntil = 0;
let confirmation = "";

const outbox = new Outbox(send, () => renderStatus());
const gesture = swipeable(ui.deck, ui.card, {
  enabled: () => current !== null,
  onMove: hints,
  onCommit: react,
});

// --- what is on screen -------------------------------------------------------------------------

function setState(state) {
  document.body.dataset.state = state;
  ui.actions.querySelectorAll("button").forEach((button) => {
    button.setAttribute("aria-disabled", String(state !== "tip"));
  });
  renderStatus();
}

function show(decision, { activate = false, shownAt = Date.now() } = {}) {
  const { tip } = decision;
  current = { decision, shownAt };
  remember(CURRENT_KEY, current);
  clearTimeout(wake);
  retryMs = FIRST_RETRY_MS;

  const positive = POSITIVE[tip.kind] ?? "useful";
  ui.meta.textContent = metaLine(tip);
  ui.title.textContent = tip.title;
  ui.body.textContent = tip.body;
  ui.card.dataset.eventId = decision.event_id;
  ui.card.dataset.kind = tip.kind;
  ui.hintRight.textContent = positive;
  ui.positive.textContent = positive[0].toUpperCase() + positive.slice(1);
  ui.notice.hidden = true;
  ui.waiting.hidden = true;
  gesture.reset();
  hints(NO_HINTS);
  ui.card.hidden = false;
  enter(ui.card);
  setState("tip");

  const kind = tip.kind === "todo" ? "To do" : "Advice";
  ui.announce.textContent = `${confirmation}${kind}: ${tip.title}. ${tip.body}`;
  confirmation = "";
  requestAnimationFrame(() => performance.mark("oo:tip", { detail: decision.event_id }));

  if (activate) outbox.add(requests.activate(decision.event_id));
  prefetchNext();
}

function metaLine(tip) {
  if (tip.kind === "todo") {
    return tip.effort_minutes > 0 ? `to do · ${tip.effort_minutes} min` : "to do";
  }
  return `advice · ${tip.category}`;
}

function showNotice(state, text, detail = "", action = null) {
  current = null;
  ui.card.hidden = true;
  ui.waiting.hidden = true;
  ui.noticeText.textContent = text;
  ui.noticeDetail.textContent = detail;
  ui.noticeAction.hidden = action === null;
  if (action) {
    ui.noticeAction.textContent = action.label;
    ui.noticeAction.onclick = action.run;
  }
  ui.notice.hidden = false;
  ui.announce.textContent = `${confirmation}${text} ${detail}`.trim();
  confirmation = "";
  setState(state);
}

function showQuiet({ nextAt, retryAfter }) {
  forget(CURRENT_KEY);
  quietUntil = nextAt.getTime();
  const time = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
  showNotice("quiet", `next tip at ${time.format(nextAt)}`);
  // Retry-After counts from the server's clock, so it holds even when this device's is off.
  later(retryAfter * 1000 + 500);
}

function showFailure(error) {
  const retry = { label: "Try again", run: () => advance() };
  if (error instanceof ApiError && error.status === 401) {
    offerSignIn(); // the session ended (expired, signed out elsewhere, or disabled)
  } else if (!navigator.onLine) {
    showNotice(
      "offline",
      "You're offline.",
      "Your swipes are saved and will be sent when you're back; a new tip comes then.",
    );
  } else if (!(error instanceof ApiError)) {
    showNotice(
      "error",
      "oO can't be reached.",
      "Check your connection, or that the oO server is running. Trying again on its own.",
      retry,
    );
    backOff();
  } else if (!error.permanent) {
    showNotice(
      "error",
      "Something went wrong while choosing your tip.",
      `The server said: ${error.message}. Trying again on its own.`,
      retry,
    );
    backOff();
  } else {
    showNotice(
      "error",
      "oO couldn't choose a tip.",
      `The server said: ${error.message}. Reloading the page usually fixes this.`,
      { label: "Reload", run: () => location.reload() },
    );
  }
}

function backOff() {
  later(retryMs);
  retryMs = Math.min(retryMs * 2, LAST_RETRY_MS);
}

function later(ms) {
  clearTimeout(wake);
  wake = setTimeout(() => advance(), Math.min(ms, 2 ** 31 - 1));
}

function hints({ left, right, up }) {
  ui.deck.style.setProperty("--left", left);
  ui.deck.style.setProperty("--right", right);
  ui.deck.style.setProperty("--up", up);
}

function renderStatus() {
  const pending = outbox.pending;
  let text = "";
  if (!navigator.onLine && document.body.dataset.state === "tip") {
    text = pending ? "offline · your swipes are saved" : "offline";
  }
  if (ui.status.textContent !== text) ui.status.textContent = text;
}

// --- the loop: react, show the next tip, prefetch the one after ------------------------------

async function ask(deferred) {
  try {
    return { ...(await recommend(deferred)), at: Date.now() };
  } catch (failure) {
    return { failure };
  }
}

function prefetchNext() {
  const pending = ask(true);
  prefetch = pending;
  ui.deck.dataset.prefetch = "pending";
  pending.then((outcome) => {
    if (prefetch === pending) ui.deck.dataset.prefetch = outcome.decision ? "ready" : "none";
  });
}

function react(direction, motion = still) {
  if (!current) return;
  const { decision } = current;
  const reaction =
    direction === "right" ? (POSITIVE[decision.tip.kind] ?? "useful") : REACTIONS[direction];
  performance.mark("oo:react", { detail: decision.event_id });
  current = null;
  forget(CURRENT_KEY);
  outbox.add(requests.feedback(decision.event_id, reaction));
  confirmation = CONFIRMATIONS[reaction];
  noteReaction();
  offerPush();

  const ghost = ui.card.cloneNode(true);
  ghost.removeAttribute("id");
  ghost.removeAttribute("aria-describedby");
  ghost.querySelectorAll("[id]").forEach((node) => node.removeAttribute("id"));
  ghost.classList.add("ghost");
  ghost.classList.remove("dragging");
  ghost.setAttribute("aria-hidden", "true");
  ui.card.after(ghost);
  flyOut(ghost, direction, motion).finally(() => ghost.remove());

  gesture.reset();
  hints(NO_HINTS);
  ui.card.hidden = true;
  setState("between");
  advance(reducedMotion.matches ? 0 : HANDOFF_MS);
}

/** Show whatever comes next: the prefetched tip if it is still fresh, otherwise ask now. */
function advance(handoffMs = 0) {
  if (advancing) return advancing;
  clearTimeout(wake);
  const notBefore = Date.now() + handoffMs;
  const waiting = setTimeout(() => (ui.waiting.hidden = false), WAITING_MS);
  advancing = (async () => {
    let outcome = prefetch ? await prefetch : null;
    prefetch = null;
    const fresh = Boolean(outcome?.decision) && Date.now() - outcome.at < PREFETCH_FRESH_MS;
    const stillQuiet = Boolean(outcome?.quiet) && outcome.quiet.nextAt.getTime() > Date.now();
    if (!fresh && !stillQuiet) outcome = await ask(false);
    const wait = notBefore - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    clearTimeout(waiting);
    if (current) return;
    if (outcome.decision) show(outcome.decision, { activate: fresh });
    else if (outcome.quiet) showQuiet(outcome.quiet);
    else showFailure(outcome.failure);
  })().finally(() => {
    advancing = null;
  });
  return advancing;
}

// --- a pushed tip, opened from its notification ------------------------------------------------

/**
 * Show exactly the tip a notification carried, activate it, and tell the server it was opened.
 * False when it cannot be shown (gone, or the server cannot be reached): the loop goes on.
 */
async function openPushed(eventId, kind = "tip") {
  if (!eventId) return false;
  outbox.add(requests.opened(eventId));
  if (kind !== "tip") return false;
  try {
    show(await decisionById(eventId), { activate: true });
    return true;
  } catch (error) {
    console.warn(`oO: the pushed tip ${eventId} cannot be shown: ${error.message}`);
    return false;
  }
}

/** `/?tip=<event id>`: the page was opened from a notification. */
function pushedFromUrl() {
  const eventId = new URLSearchParams(location.search).get("tip");
  if (eventId) history.replaceState(null, "", "/");
  return eventId;
}

// --- mood --------------------------------------------------------------------------------------

function checkIn(value) {
  const at = new Date();
  remember(MOOD_KEY, { value, at: at.getTime() });
  renderMood();
  outbox.add(requests.mood(value, at));
  ui.announce.textContent = `Mood ${value} of 5, noted.`;
}

function renderMood() {
  const saved = recall(MOOD_KEY);
  const value = saved && Date.now() - saved.at < MOOD_MS ? saved.value : 0;
  ui.mood.querySelectorAll("[data-mood]").forEach((dot) => {
    dot.setAttribute("aria-pressed", String(Number(dot.dataset.mood) === value));
  });
}

// --- wiring --------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  const direction = KEYS[event.key];
  if (!direction || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
  if (event.repeat || gesture.dragging) return;
  if (event.target instanceof Element && event.target.closest("#connections")) return;
  event.preventDefault();
  react(direction);
});

ui.actions.addEventListener("click", (event) => {
  const button = event.target.closest("[data-direction]");
  if (button) react(button.dataset.direction);
});

ui.mood.addEventListener("click", (event) => {
  const dot = event.target.closest("[data-mood]");
  if (dot) checkIn(Number(dot.dataset.mood));
});

addEventListener("online", () => {
  outbox.flush();
  renderStatus();
  const next = ui.deck.dataset.prefetch;
  if (current && next !== "ready" && next !== "pending") prefetchNext();
  if (!current) advance();
});

addEventListener("offline", () => renderStatus());

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  outbox.flush();
  renderMood();
  const state = document.body.dataset.state;
  if ((state === "quiet" && Date.now() >= quietUntil) || state === "error") {
    advance();
  } else if (state === "tip" && navigator.onLine && Date.now() - current.shownAt > REUSE_MS) {
    // Back after a long while: the tip on screen was chosen for another moment.
    current = null;
    forget(CURRENT_KEY);
    ui.card.hidden = true;
    setState("between");
    advance();
  }
});

// --- signing in --------------------------------------------------------------------------------

/** False when the server wants a sign-in first; then the page offers its providers instead. */
async function signedIn() {
  let profile;
  try {
    profile = await me();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      await offerSignIn();
      return false;
    }
    return true; // offline or failing: the tip loop says what is wrong and retries
  }
  offerSignOut();
  // Both quiet and off the tip's path: the first tip does not wait for them.
  syncTimezone(profile);
  showConnections();
  return true;
}

async function offerSignIn() {
  clearTimeout(wake);
  forget(CURRENT_KEY);
  let providers = [];
  try {
    ({ providers } = await signInOptions());
  } catch {
    // Shown below: no button to press.
  }
  ui.account.replaceChildren(
    ...providers.map((provider) => {
      const link = document.createElement("a");
      link.className = "sign-in";
      link.href = provider.login_url;
      link.textContent = `Sign in with ${provider.label}`;
      return link;
    }),
  );
  ui.account.hidden = providers.length === 0;
  showNotice(
    "signed-out",
    "Sign in to get your tips.",
    providers.length ? "" : "No way to sign in answers right now; reload to try again.",
  );
}

async function offerSignOut() {
  let options;
  try {
    options = await signInOptions();
  } catch {
    return;
  }
  if (options.local) return; // local single-user mode: nobody signs in or out
  const button = document.createElement("button");
  button.type = "button";
  button.className = "sign-out";
  button.textContent = "Sign out";
  button.addEventListener("click", async () => {
    try {
      await signOut();
    } finally {
      forget(CURRENT_KEY);
      location.assign("/");
    }
  });
  ui.account.replaceChildren(button);
  ui.account.hidden = false;
}

async function boot() {
  renderMood();
  const pushed = pushedFromUrl();
  if (!(await signedIn())) return;
  outbox.flush();
  const saved = recall(CURRENT_KEY);
  if (pushed && (await openPushed(pushed))) {
    // Shown: the tip the notification carried.
  } else if (saved?.decision && (Date.now() - saved.shownAt < REUSE_MS || !navigator.onLine)) {
    // The tip on screen stays through a reload, and always while offline.
    show(saved.decision, { shownAt: saved.shownAt });
  } else {
    setState("loading");
    advance();
  }
  if ("serviceWorker" in navigator) {
    // A notification clicked while this page is open: the worker says which tip.
    navigator.serviceWorker.addEventListener("message", (event) => {
      if (event.data?.type === "oo:open-push") openPushed(event.data.eventId, event.data.kind);
    });
    const register = () =>
      navigator.serviceWorker
        .register("/sw.js")
        .then(() => syncPush())
        .then(() => offerPush())
        .catch((error) => {
          console.warn(`oO: no offline support: ${error.message}`);
        });
    if (document.readyState === "complete") register();
    else addEventListener("load", register, { once: true });
  }
}

boot();
