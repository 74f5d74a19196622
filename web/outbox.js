// Requests that must reach the server eventually: reactions, activations, mood check-ins.
//
// Each is written to localStorage before it is sent, and removed once the server has answered,
// so a swipe made offline, or just before the tab closes, is sent on the next chance. Requests
// keep their order (an activation goes before the reaction to the same tip). A key names each
// one; the server is idempotent per event id, so sending one twice (two tabs, a lost answer) is
// harmless.

const STORAGE_KEY = "oo.outbox";
const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 30000;

export class Outbox {
  /**
   * @param send  async (request) => void; throws an error with `permanent` true when
   *              sending again cannot help (such a request is dropped)
   * @param onChange  called with the number of requests waiting, after every change
   */
  constructor(send, onChange = () => {}) {
    this.send = send;
    this.onChange = onChange;
    this.running = null;
    this.again = false;
    this.retryMs = FIRST_RETRY_MS;
    this.timer = 0;
    this.memory = []; // used only where storage is blocked
  }

  get pending() {
    return this.#read().length;
  }

  add(request) {
    const items = this.#read();
    if (!items.some((item) => item.key === request.key)) {
      items.push(request);
      this.#write(items);
    }
    return this.flush();
  }

  /** Send what is waiting, in order; stop at the first failure and retry later. */
  flush() {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    clearTimeout(this.timer);
    this.running = this.#drain().finally(() => {
      this.running = null;
      if (this.again) {
        this.again = false;
        this.flush();
      }
    });
    return this.running;
  }

  async #drain() {
    for (;;) {
      const [item] = this.#read();
      if (!item) {
        this.retryMs = FIRST_RETRY_MS;
        return;
      }
      try {
        await this.send(item);
      } catch (error) {
        if (!error.permanent) {
          // Offline or the server is struggling: keep it, try again a little later.
          if (navigator.onLine) {
            this.timer = setTimeout(() => this.flush(), this.retryMs);
            this.retryMs = Math.min(this.retryMs * 2, LAST_RETRY_MS);
          }
          return;
        }
        console.warn(`oO: dropped ${item.key}: ${error.message}`);
      }
      this.#write(this.#read().filter((other) => other.key !== item.key));
    }
  }

  // Read storage every time rather than caching it: another tab may have changed the list.
  #read() {
    try {
      const items = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "[]");
      return Array.isArray(items) ? items : [];
    } catch {
      return [...this.memory];
    }
  }

  #write(items) {
    this.memory = items;
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(items));
    } catch {
      // Storage full or blocked: the requests live as long as this page does.
    }
    this.onChange(items.length);
  }
}
