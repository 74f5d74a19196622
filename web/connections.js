// The quiet corner of the page: which integrations feed the tips, and the device's timezone.

import { ApiError, disconnect, integrations, updateMe } from "./api.js";
import * as push from "./push.js";

const LABELS = { todoist: "Todoist", "google-calendar": "Google Calendar" };
const STATES = {
  connected: "connected",
  needs_reconnect: "needs reconnect",
  not_connected: "not connected",
};
// The zone this device last sent; see `syncTimezone`.
const TIMEZONE_KEY = "oo.timezone-sent";

const $ = (id) => document.getElementById(id);
const ui = {
  root: $("connections"),
  toggle: $("connections-toggle"),
  panel: $("connections-panel"),
  list: $("connections-list"),
  message: $("connections-message"),
};

/**
 * The disclosure: a small "connections" button that opens a list of the integrations, each
 * with what can be done about it (connect, reconnect, disconnect). Hidden when the server does
 * not answer /v1/integrations (signed out, or an older server).
 */
export async function showConnections() {
  let items;
  try {
    items = await integrations();
  } catch {
    ui.root.hidden = true;
    return;
  }
  render(items);
  ui.root.hidden = false;
  const notifications = await pushRow();
  if (notifications) ui.list.append(notifications);
}

function render(items) {
  const attention = items.filter((item) => item.status === "needs_reconnect").length;
  ui.root.dataset.attention = String(attention > 0);
  ui.toggle.setAttribute(
    "aria-label",
    attention ? `Connections, ${attention} need${attention === 1 ? "s" : ""} reconnecting` : "Connections",
  );
  ui.list.replaceChildren(...items.map(row));
}

function row(item) {
  const label = LABELS[item.provider] ?? item.provider;
  const li = document.createElement("li");
  li.className = "connection";
  li.dataset.provider = item.provider;
  li.dataset.status = item.status;
  const name = document.createElement("span");
  name.className = "connection-name";
  name.textContent = label;
  const state = document.createElement("span");
  state.className = "connection-state";
  state.textContent = item.configured || item.status !== "not_connected"
    ? STATES[item.status] ?? item.status
    : "not available here";
  li.append(name, state);

  if (item.configured && item.status !== "connected") {
    const link = document.createElement("a");
    link.className = "connection-action";
    link.href = item.connect_url;
    link.textContent = item.status === "needs_reconnect" ? "Reconnect" : "Connect";
    link.setAttribute("aria-label", `${link.textContent} ${label}`);
    li.append(link);
  }
  if (item.status !== "not_connected") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "connection-action";
    button.textContent = "Disconnect";
    button.setAttribute("aria-label", `Disconnect ${label}`);
    button.addEventListener("click", () => remove(item.provider, label, button));
    li.append(button);
  }
  return li;
}

const PUSH_STATES = { on: "on", off: "off", blocked: "blocked in this browser" };

/** Notifications on this device: on or off, and what can be done about it. */
async function pushRow() {
  const state = await push.state().catch(() => null);
  if (!state) return null;
  const li = document.createElement("li");
  li.className = "connection";
  li.dataset.provider = "notifications";
  li.dataset.status = state;
  const name = document.createElement("span");
  name.className = "connection-name";
  name.textContent = "Notifications";
  const status = document.createElement("span");
  status.className = "connection-state";
  status.textContent = PUSH_STATES[state];
  li.append(name, status);
  const action = (text, run) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "connection-action";
    button.textContent = text;
    button.setAttribute("aria-label", `${text} (notifications)`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        say(await run());
      } catch (error) {
        say(`Notifications: ${error.message}`);
      }
      await showConnections();
    });
    li.append(button);
  };
  if (state === "on") {
    action("Send a test", async () => {
      const devices = await push.test();
      return `A test is on its way to ${devices} device${devices === 1 ? "" : "s"}.`;
    });
    action("Turn off", async () => {
      await push.turnOff();
      return "Notifications off on this device.";
    });
  } else if (state === "off") {
    action("Turn on", async () =>
      (await push.turnOn()) ? "Notifications on." : "Notifications stay off.",
    );
  }
  return li;
}

async function remove(provider, label, button) {
  button.disabled = true;
  try {
    await disconnect(provider);
    say(`${label} disconnected.`);
  } catch (error) {
    say(`${label} could not be disconnected: ${error.message}`);
  }
  await showConnections();
  // The row was redrawn: keep the keyboard where it was.
  const again = ui.list.querySelector(`[data-provider="${CSS.escape(provider)}"] .connection-action`);
  (again ?? ui.toggle).focus();
}

function say(text) {
  ui.message.textContent = text;
}

function open(opened) {
  ui.panel.hidden = !opened;
  ui.toggle.setAttribute("aria-expanded", String(opened));
  if (!opened) say("");
}

ui.toggle.addEventListener("click", () => {
  const opening = ui.panel.hidden;
  open(opening);
  if (opening) showConnections();
});

ui.root.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !ui.panel.hidden) {
    open(false);
    ui.toggle.focus();
  }
});

document.addEventListener("click", (event) => {
  if (!ui.panel.hidden && !ui.root.contains(event.target)) open(false);
});

/**
 * Send the device's timezone when the profile still has the server's default (UTC) and this
 * device has not sent this zone before. A zone the person chose is never overwritten: any zone
 * other than UTC is theirs (or an earlier sync they kept), and UTC after we sent a zone from
 * this device means they set it back on purpose. Resolves to the zone sent, or null.
 */
export async function syncTimezone(profile) {
  let device;
  try {
    device = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    return null;
  }
  if (!device || !profile || profile.timezone === device || profile.timezone !== "UTC") {
    return null;
  }
  if (recall() === device) return null;
  try {
    await updateMe({ timezone: device });
  } catch (error) {
    // A zone the server does not know will not become known by asking again.
    if (error instanceof ApiError && (error.status === 400 || error.status === 422)) {
      remember(device);
    }
    return null;
  }
  remember(device);
  return device;
}

function recall() {
  try {
    return localStorage.getItem(TIMEZONE_KEY);
  } catch {
    return null;
  }
}

function remember(zone) {
  try {
    localStorage.setItem(TIMEZONE_KEY, zone);
  } catch {
    // Private mode without storage: the zone is sent again on the next visit, no harm.
  }
}
