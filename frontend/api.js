// Talks to the service: lists the bundled examples and runs code, once, as a batch over many
// inputs, or in a session (created, read and ended here too), with the tenant's API key when one
// is given. A single run outside a session asks for its answer as Server-Sent Events, so console
// entries arrive while the script runs and the result comes last.
// Every way a request can fail (network, HTTP status, a key refused, a body that is not the API's
// JSON, a stream cut short) becomes a `RequestFailure` whose `title` and `message` are written for
// people.

/** How long the page waits for an answer: above the server's longest deadline (30 s) plus queueing. */
const CLIENT_TIMEOUT_MS = 60_000;

/** The media type of an answer streamed as Server-Sent Events. */
const EVENT_STREAM = "text/event-stream";

/** A request that produced no execution outcome, described for display. */
export class RequestFailure extends Error {
  constructor(title, message, { status = 0, kind = "network" } = {}) {
    super(message);
    this.name = "RequestFailure";
    this.title = title;
    this.status = status;
    this.kind = kind;
  }
}

/** `GET /api/examples` → `[{ name, source }]`. */
export async function fetchExamples({ apiKey = "" } = {}) {
  const body = await send("api/examples", { method: "GET" }, apiKey);
  if (!Array.isArray(body?.examples)) {
    throw new RequestFailure("Unexpected response", "The server sent a list of examples this page cannot read.", {
      kind: "bad_response",
    });
  }
  return body.examples;
}

/**
 * `POST /api/execute` → the execution outcome (`status`, `result`, `error`, `log`, `executionTime`).
 * The answer is asked for as a stream: `onStart()` is called once the script has a worker and
 * `onLog(entry)` with each console entry as the script makes it, before the outcome resolves
 * (a server that answers with plain JSON calls neither). A script that fails still resolves: only
 * failures of the request itself throw.
 */
export async function execute(request, { apiKey = "", onStart = () => {}, onLog = () => {} } = {}) {
  const response = await open(
    "api/execute",
    {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: `${EVENT_STREAM}, application/json;q=0.9` },
      body: JSON.stringify(request),
    },
    apiKey,
  );
  if (!response.ok || !isEventStream(response)) return executionOutcome(await readJson(response, apiKey));

  onStart();
  try {
    for await (const { event, data } of serverSentEvents(response.body)) {
      if (event === "log") onLog(parseEventData(data));
      else if (event === "result") return executionOutcome(parseEventData(data));
      else if (event === "error") throw interruptedRun(parseEventData(data));
    }
  } catch (error) {
    throw error instanceof RequestFailure ? error : fetchFailure(error);
  }
  throw new RequestFailure("Answer cut short", "The connection closed before the script's result arrived. Try again.", {
    kind: "stream_ended",
  });
}

/**
 * `POST /api/batch` → one execution outcome per item of `request.inputs`, in their order. Items
 * that fail are outcomes too; only failures of the request itself (a refused batch) throw.
 */
export async function runBatch(request, { apiKey = "" } = {}) {
  const body = await send(
    "api/batch",
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) },
    apiKey,
  );
  if (!Array.isArray(body?.results) || body.results.length !== request.inputs.length) {
    throw new RequestFailure("Unexpected response", "The server's answer is not one result per input.", {
      kind: "bad_response",
    });
  }
  return body.results.map(executionOutcome);
}

/** `POST /api/sessions` with `settings` (`memoryLimitMb`, ...) → the new session's `{ id, expiresAt }`. */
export async function createSession(settings, { apiKey = "" } = {}) {
  const body = await send("api/sessions", postJson(settings), apiKey);
  if (typeof body?.id !== "string" || typeof body?.expiresAt !== "string") {
    throw new RequestFailure("Unexpected response", "The server's answer does not name a session.", { kind: "bad_response" });
  }
  return body;
}

/**
 * `POST /api/sessions/{id}/execute` → the execution outcome of `request` run in the session's
 * runtime. A session's answer comes whole, as plain JSON.
 */
export async function executeInSession(id, request, { apiKey = "" } = {}) {
  return executionOutcome(await send(sessionPath(id, "/execute"), postJson(request), apiKey));
}

/** `GET /api/sessions/{id}` → its state (`expiresAt`, `executions`, ...). */
export async function sessionState(id, { apiKey = "" } = {}) {
  const body = await send(sessionPath(id), { method: "GET" }, apiKey);
  if (typeof body?.expiresAt !== "string") {
    throw new RequestFailure("Unexpected response", "The server's answer is not a session's state.", { kind: "bad_response" });
  }
  return body;
}

/**
 * `DELETE /api/sessions/{id}`. `keepalive` lets the request outlive the page, which is going away.
 * A session already gone counts as ended.
 */
export async function endSession(id, { apiKey = "", keepalive = false } = {}) {
  const response = await open(sessionPath(id), { method: "DELETE", keepalive }, apiKey);
  if (response.status === 204 || response.status === 404) return;
  throw describeHttpFailure(response, await response.json().catch(() => null), apiKey !== "");
}

/** The path of session `id`, and of `suffix` under it. */
export function sessionPath(id, suffix = "") {
  return `api/sessions/${encodeURIComponent(id)}${suffix}`;
}

function postJson(body) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

/** The API's JSON body, or the failure its status and body describe. */
async function send(url, init, apiKey) {
  return readJson(await open(url, init, apiKey), apiKey);
}

/** The response to a request with the key, once its headers are in; no answer at all throws. */
async function open(url, init, apiKey) {
  const authorization = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  try {
    return await fetch(url, {
      ...init,
      headers: { Accept: "application/json", ...authorization, ...init.headers },
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
  } catch (error) {
    throw fetchFailure(error);
  }
}

async function readJson(response, apiKey) {
  const body = await response.json().catch(() => null);
  if (response.ok && body !== null) return body;
  throw describeHttpFailure(response, body, apiKey !== "");
}

/** A request that ran out of time or lost its connection, before or while its answer arrived. */
function fetchFailure(error) {
  if (error?.name === "TimeoutError") {
    return new RequestFailure("No answer", `The server did not answer within ${CLIENT_TIMEOUT_MS / 1000} s.`, {
      kind: "client_timeout",
    });
  }
  return new RequestFailure("Can't reach the server", "The request did not get through. Check your connection and try again.");
}

function executionOutcome(body) {
  if (body?.status !== "success" && body?.status !== "error") {
    throw new RequestFailure("Unexpected response", "The server's answer is not an execution result.", {
      kind: "bad_response",
    });
  }
  return body;
}

/** A stream's `error` event: the execution was lost after it started (the service stopping, say). */
function interruptedRun(body) {
  const kind = typeof body?.error?.kind === "string" ? body.error.kind : "stream_error";
  const message = typeof body?.error?.message === "string" && body.error.message !== ""
    ? body.error.message
    : "The service lost the execution after it started.";
  return new RequestFailure("Run interrupted", `${message} Try again.`, { kind });
}

function isEventStream(response) {
  return (response.headers.get("Content-Type") ?? "").split(";")[0].trim().toLowerCase() === EVENT_STREAM;
}

function parseEventData(data) {
  try {
    return JSON.parse(data);
  } catch {
    throw new RequestFailure("Unexpected response", "The server sent an event this page cannot read.", {
      kind: "bad_response",
    });
  }
}

/**
 * The events of a `text/event-stream` body as `{ event, data }`, as the HTML standard's parser
 * reads them: `event:` names it (`message` when absent), `data:` lines are joined by newlines,
 * comments (`:`, the heartbeat) and other fields are skipped, a blank line ends an event.
 */
async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\n|\r(?=[^\n])/);
      // The last piece is a line not yet ended (a lone "\r" at the end may be half of "\r\n").
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0) yield { event: event || "message", data: data.join("\n") };
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * The refusals that concern a session: their titles, and for a session that is gone what the page
 * does about it (otherwise the server's message says why).
 */
const SESSION_FAILURES = {
  session_expired: {
    title: "Session expired",
    message: "The session was left idle until it expired, and its state went with it. The next Run starts a new session.",
  },
  session_not_found: {
    title: "Session gone",
    message: "The service no longer has this session (it was ended, or the instance holding it is gone), nor its state. The next Run starts a new session.",
  },
  session_busy: { title: "Session busy" },
  session_limit: { title: "No session available" },
};

function describeHttpFailure(response, body, sentKey) {
  const { status } = response;
  const serverMessage = typeof body?.error?.message === "string" ? body.error.message : "";
  const kind = typeof body?.error?.kind === "string" ? body.error.kind : `http_${status}`;
  const retry = retryAfterSeconds(response.headers.get("Retry-After"));
  const retryHint = retry === null ? "Try again in a moment." : `Try again in ${retry} s.`;
  const details = { status, kind };

  const sessionFailure = SESSION_FAILURES[kind];
  if (sessionFailure) {
    const message = sessionFailure.message ?? (serverMessage || `The server refused the session (HTTP ${status}).`);
    return new RequestFailure(sessionFailure.title, message, details);
  }

  switch (status) {
    case 401:
      return sentKey
        ? new RequestFailure("API key not accepted", "The server does not know this API key. Check it, or clear the API key field to run without one.", details)
        : new RequestFailure("API key needed", "This server runs code only for holders of an API key. Enter yours in the API key field.", details);
    case 429:
      return new RequestFailure("Too many requests", `You are sending runs faster than this server allows. ${retryHint}`, details);
    case 413:
      return new RequestFailure("Script too large", serverMessage || "The request is larger than the server accepts.", details);
    case 502:
      return new RequestFailure("Sandbox unavailable", "The sandbox could not be reached (502 Bad Gateway). Try again shortly.", details);
    case 503:
      return new RequestFailure("Server busy", `Every sandbox is busy right now (503). ${retryHint}`, details);
    case 504:
      return new RequestFailure("Sandbox timed out", "The sandbox did not answer in time (504 Gateway Timeout).", details);
    default:
      if (status >= 400 && status < 500) {
        return new RequestFailure("Request rejected", serverMessage || `The server rejected the request (HTTP ${status}).`, details);
      }
      if (response.ok) {
        return new RequestFailure("Unexpected response", "The server's answer is not JSON.", { status, kind: "bad_response" });
      }
      return new RequestFailure("Server error", `Something went wrong on the server (HTTP ${status}). Try again later.`, details);
  }
}

/** `Retry-After` is either delay-seconds or an HTTP date; `null` when absent or unreadable. */
function retryAfterSeconds(header) {
  if (header === null) return null;
  if (/^\s*\d+\s*$/.test(header)) return Math.max(1, Number(header));
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(1, Math.ceil((date - Date.now()) / 1000));
}
