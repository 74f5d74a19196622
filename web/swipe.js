// The gesture: the tip follows a finger or the mouse, leans and fades towards where it is going,
// leaves when pulled far or flicked fast enough, and springs back otherwise.

export const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

const FLICK = 0.5; // px/ms: a release this fast commits even a short drag...
const FLICK_MIN_PX = 24; // ...as long as it moved at least this far
const VELOCITY_WINDOW_MS = 90; // release velocity is measured over the last moments of the drag
const STIFFNESS = 380; // spring back: 1/s², with a little less than critical damping
const DAMPING = 2 * Math.sqrt(STIFFNESS) * 0.78;

export const still = { x: 0, y: 0, vx: 0, vy: 0 };

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

/** How far a drag must go to commit, per axis, for this window. */
function reach() {
  return { x: Math.min(150, innerWidth * 0.26), y: Math.min(130, innerHeight * 0.16) };
}

/** Put a tip at an offset from its resting place, leaning the way it is dragged. */
export function place(element, x, y) {
  if (!x && !y) {
    element.style.transform = "";
    element.style.opacity = "";
    return;
  }
  const lean = reducedMotion.matches ? 0 : clamp((x / innerWidth) * 18, -14, 14);
  element.style.transform = `translate3d(${x}px, ${y}px, 0) rotate(${lean}deg)`;
  const { left, right, up } = progress(x, y);
  element.style.opacity = String(1 - 0.35 * Math.max(left, right, up));
}

/** 0..1 towards each direction; only the leading direction counts. */
export function progress(x, y) {
  const { x: rx, y: ry } = reach();
  const sideways = Math.abs(x) / rx;
  const upwards = Math.max(0, -y) / ry;
  if (sideways >= upwards) {
    const share = clamp(sideways, 0, 1);
    return { left: x < 0 ? share : 0, right: x > 0 ? share : 0, up: 0 };
  }
  return { left: 0, right: 0, up: clamp(upwards, 0, 1) };
}

/** The direction a release commits to, or null to spring back. */
function decide({ x, y, vx, vy }) {
  const { x: rx, y: ry } = reach();
  if (Math.abs(x) / rx >= Math.max(0, -y) / ry) {
    const sign = Math.sign(x);
    const speed = vx * sign; // along the drag; negative when thrown back towards the centre
    const flicked = speed > FLICK && Math.abs(x) > FLICK_MIN_PX;
    const far = Math.abs(x) >= rx && speed > -FLICK / 2;
    if (sign && (flicked || far)) return sign > 0 ? "right" : "left";
    return null;
  }
  const flicked = -vy > FLICK && -y > FLICK_MIN_PX;
  const far = -y >= ry && -vy > -FLICK / 2;
  return flicked || far ? "up" : null;
}

/** Dragging down is not an action: it gives a little, then resists. */
const resist = (y) => (y > 0 ? 36 * (1 - Math.exp(-y / 90)) : y);

/**
 * Make `surface` drag `element`.
 * @param enabled  () => boolean: whether a drag may start now
 * @param onMove   ({left, right, up}) => void: progress towards each direction
 * @param onCommit (direction, {x, y, vx, vy}) => void: the tip was let go past the threshold
 * @returns {{dragging: boolean, reset: () => void}}
 */
export function swipeable(surface, element, { enabled, onMove, onCommit }) {
  let drag = null;
  let at = { x: 0, y: 0 };
  let stopSpring = () => {};

  const move = (x, y) => {
    at = { x, y };
    place(element, x, y);
    onMove(progress(x, y));
  };

  surface.addEventListener("pointerdown", (event) => {
    if (drag || !enabled() || event.button !== 0 || event.target.closest("button")) return;
    stopSpring();
    // A tip still settling in is grabbed where it is headed, so it follows the finger at once.
    element.getAnimations().forEach((animation) => animation.finish());
    drag = {
      id: event.pointerId,
      originX: event.clientX - at.x,
      originY: event.clientY - at.y,
      samples: [{ t: event.timeStamp, x: event.clientX, y: event.clientY }],
    };
    surface.setPointerCapture(event.pointerId);
    element.classList.add("dragging");
  });

  surface.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    const { samples } = drag;
    samples.push({ t: event.timeStamp, x: event.clientX, y: event.clientY });
    while (samples.length > 2 && event.timeStamp - samples[0].t > VELOCITY_WINDOW_MS) {
      samples.shift();
    }
    move(event.clientX - drag.originX, resist(event.clientY - drag.originY));
  });

  const release = (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    const { samples } = drag;
    drag = null;
    element.classList.remove("dragging");
    // Velocity over the moments just before release: a finger that stopped before lifting
    // has no speed left, however fast it moved earlier.
    const recent = samples.filter((sample) => event.timeStamp - sample.t <= VELOCITY_WINDOW_MS);
    const first = recent[0];
    const last = recent[recent.length - 1];
    const elapsed = first ? Math.max(event.timeStamp - first.t, 1) : 1;
    const motion = {
      ...at,
      vx: recent.length > 1 ? (last.x - first.x) / elapsed : 0,
      vy: recent.length > 1 ? (last.y - first.y) / elapsed : 0,
    };
    const direction = event.type === "pointerup" ? decide(motion) : null;
    if (direction) {
      at = { x: 0, y: 0 };
      onCommit(direction, motion);
    } else {
      stopSpring = springBack(motion, move);
    }
  };

  surface.addEventListener("pointerup", release);
  surface.addEventListener("pointercancel", release);
  surface.addEventListener("lostpointercapture", release);

  return {
    get dragging() {
      return drag !== null;
    },
    /** Back to rest at once, e.g. when the tip changes by other means. */
    reset() {
      stopSpring();
      drag = null;
      element.classList.remove("dragging");
      move(0, 0);
    },
  };
}

/** A damped spring from where the tip was let go back to rest; returns a function to stop it. */
function springBack({ x, y, vx, vy }, move) {
  if (reducedMotion.matches) {
    move(0, 0);
    return () => {};
  }
  let px = x;
  let py = y;
  let sx = vx * 1000; // px/s
  let sy = vy * 1000;
  let last = performance.now();
  let frame = 0;
  const step = (now) => {
    const dt = Math.min(0.032, (now - last) / 1000);
    last = now;
    const substeps = Math.max(1, Math.ceil(dt / 0.004));
    const h = dt / substeps;
    for (let i = 0; i < substeps; i++) {
      sx += (-STIFFNESS * px - DAMPING * sx) * h;
      sy += (-STIFFNESS * py - DAMPING * sy) * h;
      px += sx * h;
      py += sy * h;
    }
    if (Math.hypot(px, py) < 0.3 && Math.hypot(sx, sy) < 10) {
      move(0, 0);
      return;
    }
    move(px, py);
    frame = requestAnimationFrame(step);
  };
  frame = requestAnimationFrame(step);
  return () => cancelAnimationFrame(frame);
}

/** Send a tip off screen the way it was going, keeping its speed; resolves when gone. */
export function flyOut(element, direction, { x, y, vx, vy } = still) {
  if (reducedMotion.matches) {
    return element.animate([{ opacity: element.style.opacity || 1 }, { opacity: 0 }], {
      duration: 140,
      easing: "linear",
      fill: "forwards",
    }).finished;
  }
  const distance = Math.max(innerWidth, innerHeight);
  const [dx, dy] = { right: [1, 0], left: [-1, 0], up: [0, -1] }[direction];
  const along = dx ? vx * dx : -vy;
  const speed = Math.max(along, 1.6); // px/ms; a key press leaves at a brisk default
  const duration = clamp(distance / speed, 180, 320);
  const toX = dx ? x + dx * distance : x + vx * duration * 0.5;
  const toY = dy ? y + dy * distance : y + vy * duration * 0.5;
  const lean = dx * 26;
  return element.animate(
    [
      { transform: element.style.transform || "none", opacity: element.style.opacity || 1 },
      { transform: `translate3d(${toX}px, ${toY}px, 0) rotate(${lean}deg)`, opacity: 0 },
    ],
    { duration, easing: "cubic-bezier(0.25, 0.6, 0.45, 1)", fill: "forwards" },
  ).finished;
}

/** The next tip settles into place. */
export function enter(element) {
  const frames = reducedMotion.matches
    ? [{ opacity: 0 }, { opacity: 1 }]
    : [
        { opacity: 0, transform: "translate3d(0, 14px, 0) scale(0.985)" },
        { opacity: 1, transform: "none" },
      ];
  element.animate(frames, {
    duration: reducedMotion.matches ? 160 : 380,
    easing: "cubic-bezier(0.16, 1, 0.3, 1)",
  });
}
