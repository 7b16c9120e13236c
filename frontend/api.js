// Talks to the service: lists the bundled examples and runs code, with the tenant's API key when
// one is given. Every way a request can fail (network, HTTP status, a key refused, a body that is
// not the API's JSON) becomes a `RequestFailure` whose `title` and `message` are written for people.

/** How long the page waits for an answer: above the server's longest deadline (30 s) plus queueing. */
const CLIENT_TIMEOUT_MS = 60_000;

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
 * A script that fails still resolves: only failures of the request itself throw.
 */
export async function execute(request, { apiKey = "" } = {}) {
  const body = await send(
    "api/execute",
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    },
    apiKey,
  );
  if (body?.status !== "success" && body?.status !== "error") {
    throw new RequestFailure("Unexpected response", "The server's answer is not an execution result.", {
      kind: "bad_response",
    });
  }
  return body;
}

async function send(url, init, apiKey) {
  const authorization = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  let response;
  try {
    response = await fetch(url, {
      ...init,
      headers: { Accept: "application/json", ...authorization, ...init.headers },
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
  } catch (error) {
    if (error.name === "TimeoutError") {
      throw new RequestFailure(
        "No answer",
        `The server did not answer within ${CLIENT_TIMEOUT_MS / 1000} s.`,
        { kind: "client_timeout" },
      );
    }
    throw new RequestFailure("Can't reach the server", "The request did not get through. Check your connection and try again.");
  }

  const body = await response.json().catch(() => null);
  if (response.ok && body !== null) return body;
  throw describeHttpFailure(response, body, apiKey !== "");
}

function describeHttpFailure(response, body, sentKey) {
  const { status } = response;
  const serverMessage = typeof body?.error?.message === "string" ? body.error.message : "";
  const kind = typeof body?.error?.kind === "string" ? body.error.kind : `http_${status}`;
  const retry = retryAfterSeconds(response.headers.get("Retry-After"));
  const retryHint = retry === null ? "Try again in a moment." : `Try again in ${retry} s.`;
  const details = { status, kind };

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
