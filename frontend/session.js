// The "Keep state" switch. While it is on, each Run goes to one session of the service (a runtime
// that keeps its globals from one execution to the next) instead of a fresh runtime. The session
// is created when the switch is turned on, or by the next Run once the last one is gone; it is
// deleted when the switch is turned off or the page goes away. Its expiry is shown and read again
// after each run, since every execution starts its idle wait again. A session that is gone
// (expired, ended with its execution, unknown to the instance) is said to be gone, plainly, and
// the next Run starts a new one. The switch's work (create, run, end) is done one step at a time,
// in order, so a switch turned off during a run ends the session once the run is over.

import { createSession, endSession, executeInSession, RequestFailure, sessionPath, sessionState } from "./api.js";

/** The sentence added wherever a session is gone. */
const NEXT_RUN = "The next Run starts a new session.";

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});

/**
 * Wires the switch (`toggle`, a checkbox) and its status line (`status`). `apiKey` is the key
 * field; `settings()` gives the body of `POST /api/sessions` (`null`, with the problem shown, when
 * it cannot be sent); `onToggle(on)` is called whenever the switch changes, by hand or not.
 */
export function keepStateSwitch({ toggle, status }, { apiKey, settings, onToggle }) {
  /** The open session: `{ id, expiresAt, apiKey }` (the key it belongs to); `null` when none. */
  let session = null;
  let queue = Promise.resolve();
  /** Runs `task` once everything asked of the switch before it is done; its result. */
  const serially = (task) => {
    const done = queue.then(task);
    queue = done.catch(() => {});
    return done;
  };

  toggle.checked = false;
  showOff();
  toggle.addEventListener("change", () => {
    onToggle(toggle.checked);
    serially(toggle.checked ? startOnSwitch : endOnSwitch);
  });
  // Best effort: the request is sent with keepalive, so it outlives the page.
  window.addEventListener("pagehide", () => {
    if (!session) return;
    endSession(session.id, { apiKey: session.apiKey, keepalive: true }).catch(() => {});
    session = null;
  });
  // A page brought back from the back-forward cache ended its session when it was left.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && toggle.checked && !session) show("gone", `The session ended when you left the page. ${NEXT_RUN}`);
  });

  /** Turned on: opens a session now, so its expiry shows; if that fails the switch goes off. */
  async function startOnSwitch() {
    if (!toggle.checked || session) return;
    try {
      await open();
    } catch (error) {
      switchOff();
      show("failure", `Could not start a session: ${describe(error)}`);
    }
  }

  /** Turned off: ends the session, if it is still open. */
  async function endOnSwitch() {
    if (toggle.checked) return;
    const ending = session;
    session = null;
    showOff();
    if (!ending) return;
    try {
      await endSession(ending.id, { apiKey: ending.apiKey });
    } catch (error) {
      show("failure", `The session could not be ended (${describe(error)}); it ends by itself once left idle.`);
    }
  }

  async function open() {
    const body = settings();
    if (body === null) throw new RequestFailure("Check the form", "a limit above is not valid.", { kind: "invalid_input" });
    show("pending", "Starting a session…");
    const key = apiKey.value;
    const created = await createSession(body, { apiKey: key });
    session = { id: created.id, expiresAt: created.expiresAt, apiKey: key };
    showOpen();
  }

  /** The session is gone from the service: forget it and say why. */
  function gone(which, message) {
    if (session !== which) return;
    session = null;
    show("gone", message);
  }

  /** Reads the session's expiry again (a run starts its idle wait again). */
  async function refresh(which) {
    try {
      const state = await sessionState(which.id, { apiKey: which.apiKey });
      if (session !== which) return;
      which.expiresAt = state.expiresAt;
      showOpen();
    } catch (error) {
      if (isGone(error)) gone(which, error.message);
      // Otherwise the expiry shown is the last one known; the next run reads it again.
    }
  }

  function switchOff() {
    toggle.checked = false;
    onToggle(false);
  }

  function showOff() {
    show("off", "Off: each run starts from nothing.");
  }

  function showOpen() {
    const expires = new Date(session.expiresAt);
    const time = document.createElement("time");
    time.dateTime = session.expiresAt;
    time.textContent = Number.isNaN(expires.getTime()) ? session.expiresAt : timeFormat.format(expires);
    status.dataset.state = "open";
    status.replaceChildren("On: each run continues from the last, until the session ends, if left idle, at ", time, ".");
  }

  function show(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  return {
    /** Whether runs go to a session. */
    get on() {
      return toggle.checked;
    },
    /** Batch mode has no sessions: the switch is off and disabled while it is on. */
    set batchMode(batch) {
      if (batch && toggle.checked) {
        switchOff();
        serially(endOnSwitch);
      }
      toggle.disabled = batch;
      if (batch) show("off", "Off in batch mode: each item of a batch runs in a fresh runtime.");
      else if (!toggle.checked) showOff();
    },
    /** Where a run would go now: the open session's execute path, or `null`. */
    get executePath() {
      return session ? sessionPath(session.id, "/execute") : null;
    },
    /**
     * Runs `request` in the session, first starting one when there is none (or when the key
     * changed, since a session belongs to the key that made it): the outcome, or the failure of
     * the request, thrown.
     */
    run(request) {
      return serially(async () => {
        if (session && session.apiKey !== apiKey.value) {
          const old = session;
          session = null;
          endSession(old.id, { apiKey: old.apiKey }).catch(() => {});
        }
        if (!session) {
          try {
            await open();
          } catch (error) {
            show("failure", `Could not start a session: ${describe(error)} The next Run tries again.`);
            throw error;
          }
        }
        const current = session;
        let outcome;
        try {
          outcome = await executeInSession(current.id, request, { apiKey: current.apiKey });
        } catch (error) {
          if (isGone(error)) gone(current, error.message);
          throw error;
        }
        if (outcome.status === "error" && outcome.error?.kind === "session_lost") {
          gone(current, `The session ended with that run, and its state went with it. ${NEXT_RUN}`);
        } else {
          await refresh(current);
        }
        return outcome;
      });
    },
  };
}

/** A 404 saying the session is no more (expired, or unknown). */
function isGone(error) {
  return error instanceof RequestFailure && (error.kind === "session_expired" || error.kind === "session_not_found");
}

function describe(error) {
  return error instanceof RequestFailure ? `${error.title}: ${error.message}` : String(error);
}
