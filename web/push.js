// Notifications: a tip that arrives at a good moment, by Web Push.
//
// Never asked for on a first visit. Once the person has reacted to a few tips, the page offers
// it once, quietly, at the bottom; "not now" is remembered on this device for a long while. The
// browser's permission prompt only ever follows a press of "turn on" (a user gesture), and the
// connections panel can turn notifications on or off, or send a test, at any time.

import { pushKey, pushTest, subscribePush, unsubscribePush } from "./api.js";
import { forget, recall, remember } from "./storage.js";

const REACTIONS_KEY = "oo.reactions";
const OFFER_KEY = "oo.push-offer";
const DEVICE_KEY = "oo.push-device";
// Offered after this many reactions, and not again for this long after "not now".
const OFFER_AFTER = 3;
const QUIET_MS = 30 * 24 * 60 * 60_000;

const $ = (id) => document.getElementById(id);
const ui = {
  offer: $("push-offer"),
  yes: $("push-yes"),
  no: $("push-no"),
  announce: $("announce"),
};

export function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** A tip got a reaction: counted on this device, for when to offer notifications. */
export function noteReaction() {
  remember(REACTIONS_KEY, (Number(recall(REACTIONS_KEY)) || 0) + 1);
}

/** Show the offer, when this is the moment for it (see the top of this file). */
export async function offer() {
  if (!supported() || !ui.offer.hidden || Notification.permission === "denied") return;
  if ((Number(recall(REACTIONS_KEY)) || 0) < OFFER_AFTER) return;
  const declinedAt = Number(recall(OFFER_KEY)?.declinedAt) || 0;
  if (Date.now() - declinedAt < QUIET_MS) return;
  if (await current()) return;
  ui.offer.hidden = false;
}

/**
 * Keep the server in step with this browser: its subscription again (the server updates the
 * same device), or a new one when the server's key changed. Nothing is asked of the person.
 */
export async function sync() {
  if (!supported() || Notification.permission !== "granted") return;
  try {
    const subscription = await current();
    if (!subscription) {
      forget(DEVICE_KEY);
      return;
    }
    const key = await pushKey();
    if (!sameKey(subscription, key)) {
      await subscription.unsubscribe();
      await subscribe(key);
      return;
    }
    remember(DEVICE_KEY, (await subscribePush(subscription.toJSON())).id);
  } catch (error) {
    console.warn(`oO: notifications not synced: ${error.message}`);
  }
}

/** Ask for permission (from a press), subscribe, and tell the server. True when on. */
export async function turnOn() {
  // First, before any await: the prompt needs the press's user activation.
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    decline();
    return false;
  }
  await subscribe(await pushKey());
  return true;
}

/** Unsubscribe this browser and forget it on the server. */
export async function turnOff() {
  const subscription = await current();
  const id = recall(DEVICE_KEY);
  forget(DEVICE_KEY);
  if (subscription) await subscription.unsubscribe();
  if (id) await unsubscribePush(id);
}

/** This browser's state: "on", "off", "blocked" (denied in the browser) or null (no push). */
export async function state() {
  if (!supported()) return null;
  if (Notification.permission === "denied") return "blocked";
  return (await current()) && recall(DEVICE_KEY) ? "on" : "off";
}

/** Send the test push; resolves to how many devices it went to. */
export async function test() {
  return (await pushTest()).devices;
}

async function subscribe(key) {
  const registration = await navigator.serviceWorker.ready;
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: fromBase64Url(key),
  });
  remember(DEVICE_KEY, (await subscribePush(subscription.toJSON())).id);
}

async function current() {
  const registration = await navigator.serviceWorker.getRegistration();
  return registration ? registration.pushManager.getSubscription() : null;
}

function sameKey(subscription, key) {
  const used = subscription.options?.applicationServerKey;
  if (!used) return true; // not exposed by this browser: assume it is the one it was given
  const bytes = new Uint8Array(used);
  const wanted = fromBase64Url(key);
  return bytes.length === wanted.length && bytes.every((byte, i) => byte === wanted[i]);
}

function fromBase64Url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

function decline() {
  remember(OFFER_KEY, { declinedAt: Date.now() });
  ui.offer.hidden = true;
}

function say(text) {
  ui.announce.textContent = text;
}

// --- the offer ---------------------------------------------------------------------------------

ui.yes.addEventListener("click", async () => {
  ui.yes.disabled = true;
  try {
    const on = await turnOn();
    ui.offer.hidden = true;
    say(on ? "Notifications on. A tip will come when the moment fits." : "Notifications stay off.");
  } catch (error) {
    say(`Notifications could not be turned on: ${error.message}`);
  } finally {
    ui.yes.disabled = false;
  }
});

ui.no.addEventListener("click", () => {
  decline();
  say("Not now. You can turn notifications on in connections.");
});
