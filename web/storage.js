// This device's small memory (localStorage as JSON). Private mode or a full store never breaks
// the page: a write is dropped, a read gives null, and the page just forgets on reload.

export function remember(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Dropped: see above.
  }
}

export function recall(key) {
  try {
    return JSON.parse(localStorage.getItem(key) ?? "null");
  } catch {
    return null;
  }
}

export function forget(key) {
  try {
    localStorage.removeItem(key);
  } catch {
    // As above.
  }
}
