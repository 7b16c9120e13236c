// Renders an execution outcome (or a failed request) into the output panel, the console entries of
// a run that takes more than a moment as they arrive, and a batch's outcomes as a table of rows. Everything that came from the script is
// inserted as text nodes, never as HTML: the output is as untrusted as the code.

const ERROR_KIND_LABELS = {
  syntax: "Syntax error",
  exception: "Uncaught exception",
  timeout: "Timed out",
  memory: "Out of memory",
  stack_overflow: "Stack overflow",
  output_limit: "Output limit reached",
  session_lost: "Session lost",
};

/** Console types with a style of their own; any other type is shown like `log`, under its name. */
const STYLED_CONSOLE_TYPES = new Set(["log", "info", "warn", "error", "debug"]);

/**
 * How long a started script runs before its console entries are shown as they arrive. A quicker
 * script's output is shown once, with its result, rather than flashing an emptied console first.
 */
const LIVE_CONSOLE_AFTER_MS = 150;

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  fractionalSecondDigits: 3,
  hourCycle: "h23",
});

/** Finds the output panel's parts once. */
export function outputPanel(root) {
  const byId = (id) => root.getElementById(id);
  return {
    pane: root.querySelector(".output-pane"),
    status: byId("status"),
    executionTime: byId("execution-time"),
    errorDetails: byId("error-details"),
    result: byId("result"),
    resultBlock: root.querySelector(".result-block"),
    consoleBlock: root.querySelector(".console-block"),
    batchBlock: byId("batch-block"),
    batchRows: byId("batch-table").tBodies[0],
    batchCount: byId("batch-count"),
    console: byId("console"),
    consoleCount: byId("console-count"),
    consoleEmpty: byId("console-empty"),
  };
}

export function renderRunning(panel) {
  panel.pane.classList.add("is-running");
  setStatus(panel, "running", "Running…", "Waiting for the sandbox.");
}

/**
 * The script has a worker and its console entries stream in: returns `{ log(entry), end() }`.
 * Until it has run for `LIVE_CONSOLE_AFTER_MS` the entries are held; then the console is emptied
 * for this run and shows them, and each later one as `log` receives it. `end` stops the clock
 * (the outcome or failure shown next replaces the whole console).
 */
export function renderStarted(panel) {
  const held = [];
  let append = null;
  const timer = setTimeout(() => {
    setStatus(panel, "running", "Running…", "The script is running; its console output appears as it is logged.");
    // What is left of the previous run would read as this one's: only the console stays lit.
    panel.pane.classList.add("is-live");
    panel.errorDetails.hidden = true;
    panel.executionTime.hidden = true;
    showPlaceholder(panel.result, "Waiting for the result…");
    append = consoleAppender(panel);
    showBatchView(panel, false);
    for (const entry of held.splice(0)) append(entry);
  }, LIVE_CONSOLE_AFTER_MS);
  return {
    log(entry) {
      if (append) append(entry);
      else held.push(entry);
    },
    end() {
      clearTimeout(timer);
    },
  };
}

/** Shows a response from `POST /api/execute`, successful or not. */
export function renderOutcome(panel, outcome) {
  panel.pane.classList.remove("is-running", "is-live");
  showBatchView(panel, false);
  const error = outcome.status === "error" && outcome.error ? outcome.error : null;

  if (error) {
    const title = ERROR_KIND_LABELS[error.kind] ?? "Error";
    const summary = [error.name, error.message].filter(Boolean).join(": ") || "The script failed.";
    setStatus(panel, "error", title, summary, error.kind);
  } else {
    setStatus(panel, "success", "Success", "The script finished.");
  }

  // Only blank lines are trimmed at the start: the first frame keeps its indentation.
  const stack = typeof error?.stack === "string" ? error.stack.replace(/^\s*\n/, "").trimEnd() : "";
  panel.errorDetails.hidden = stack === "";
  panel.errorDetails.querySelector(".stack").textContent = stack;

  if (error) {
    showPlaceholder(panel.result, "No result: the script did not finish.");
  } else {
    panel.result.classList.remove("empty");
    panel.result.replaceChildren(highlightJson(JSON.stringify(outcome.result ?? null, null, 2)));
  }

  renderConsole(panel, Array.isArray(outcome.log) ? outcome.log : []);

  if (typeof outcome.executionTime === "number") {
    panel.executionTime.hidden = false;
    panel.executionTime.textContent = `Ran in ${formatDuration(outcome.executionTime)}`;
  } else {
    panel.executionTime.hidden = true;
  }
}

/** Shows a request that got no execution outcome (network failure, 429, 5xx, ...). */
export function renderFailure(panel, failure) {
  panel.pane.classList.remove("is-running", "is-live");
  showBatchView(panel, false);
  const title = failure.status ? `${failure.title} · HTTP ${failure.status}` : failure.title;
  setStatus(panel, "failure", title, failure.message, failure.kind);
  panel.errorDetails.hidden = true;
  panel.executionTime.hidden = true;
  showPlaceholder(panel.result, "No result: the script was not run.");
  renderConsole(panel, []);
}

/**
 * Shows the answer of `POST /api/batch`: one row per item of `inputs` with its outcome (`outcomes`
 * are in the same order), in place of the single run's result and console.
 */
export function renderBatch(panel, inputs, outcomes) {
  panel.pane.classList.remove("is-running", "is-live");
  const failed = outcomes.filter((outcome) => outcome.status === "error").length;
  const items = `${outcomes.length} ${outcomes.length === 1 ? "item" : "items"}`;
  if (failed === 0) {
    setStatus(panel, "success", "Success", `The script ran for each of the ${items}.`);
  } else {
    setStatus(panel, "error", "Some items failed", `${failed} of ${items} ended in an error: see their rows.`, "batch");
  }
  panel.errorDetails.hidden = true;
  const total = outcomes.reduce((sum, outcome) => sum + (Number(outcome.executionTime) || 0), 0);
  panel.executionTime.hidden = false;
  panel.executionTime.textContent = `Ran in ${formatDuration(total)} in all`;

  const rows = document.createDocumentFragment();
  outcomes.forEach((outcome, index) => rows.append(batchRow(index, inputs[index], outcome)));
  panel.batchRows.replaceChildren(rows);
  panel.batchCount.textContent = String(outcomes.length);
  showBatchView(panel, true);
}

/** Shows a problem found before sending anything, such as an unreadable limit. */
export function renderInvalidInput(panel, message) {
  setStatus(panel, "failure", "Check the form", message, "invalid_input");
}

/** Shows either the batch table or the single run's result and console. */
function showBatchView(panel, batch) {
  panel.batchBlock.hidden = !batch;
  panel.resultBlock.hidden = batch;
  panel.consoleBlock.hidden = batch;
}

/** A batch's row: the item's index, its input, its outcome, result or error, time and console. */
function batchRow(index, input, outcome) {
  const row = element("tr", "batch-row");
  const error = outcome.status === "error" && outcome.error ? outcome.error : null;
  row.dataset.status = outcome.status;

  const indexCell = element("th");
  indexCell.scope = "row";
  indexCell.textContent = String(index);

  const inputCell = element("td", "batch-input json");
  inputCell.append(highlightJson(JSON.stringify(input ?? null)));

  const outcomeCell = element("td", `batch-outcome batch-outcome-${error ? "error" : "success"}`);
  outcomeCell.dataset.kind = error?.kind ?? "";
  outcomeCell.textContent = error ? (ERROR_KIND_LABELS[error.kind] ?? "Error") : "Success";

  const resultCell = element("td", "batch-result");
  if (error) {
    resultCell.classList.add("batch-error");
    resultCell.textContent = [error.name, error.message].filter(Boolean).join(": ") || "The script failed.";
  } else {
    resultCell.classList.add("json");
    resultCell.append(highlightJson(JSON.stringify(outcome.result ?? null)));
  }

  const timeCell = element("td", "batch-time");
  timeCell.textContent = typeof outcome.executionTime === "number" ? formatDuration(outcome.executionTime) : "—";

  const consoleCell = element("td", "batch-console");
  const entries = Array.isArray(outcome.log) ? outcome.log : [];
  if (entries.length === 0) {
    consoleCell.textContent = "—";
  } else {
    // The entries fold away under their count, so that a long log does not stretch the table.
    const details = element("details");
    const summary = element("summary");
    summary.textContent = `${entries.length} ${entries.length === 1 ? "entry" : "entries"}`;
    const list = element("ol", "console");
    list.setAttribute("aria-label", `Console output of item ${index}`);
    const itemOf = consoleItems();
    for (const entry of entries) {
      const item = itemOf(entry);
      if (item) list.append(item);
    }
    details.append(summary, list);
    consoleCell.append(details);
  }

  row.append(indexCell, inputCell, outcomeCell, resultCell, timeCell, consoleCell);
  return row;
}

function setStatus(panel, state, title, text, kind = "") {
  const { status } = panel;
  status.className = `status status-${state}`;
  status.dataset.kind = kind;
  status.querySelector(".status-badge").textContent = title;
  status.querySelector(".status-text").textContent = text;
}

function showPlaceholder(element, text) {
  element.classList.add("empty");
  element.textContent = text;
}

function renderConsole(panel, entries) {
  const items = document.createDocumentFragment();
  const itemOf = consoleItems();
  for (const entry of entries) {
    const item = itemOf(entry);
    if (item) items.append(item);
  }
  panel.console.replaceChildren(items);
  showConsoleCount(panel);
}

/** Empties the console and returns a function that adds one entry to it, as it arrives. */
function consoleAppender(panel) {
  panel.console.replaceChildren();
  showConsoleCount(panel);
  const itemOf = consoleItems();
  return (entry) => {
    const item = itemOf(entry);
    if (!item) return;
    panel.console.append(item);
    showConsoleCount(panel);
  };
}

/**
 * A function turning the entries of one run, in order, into list items indented by their
 * `console.group` depth; `null` for a `groupEnd`, which only closes a group.
 */
function consoleItems() {
  let depth = 0;
  return (entry) => {
    const type = typeof entry?.type === "string" ? entry.type : "log";
    if (type === "groupEnd") {
      depth = Math.max(0, depth - 1);
      return null;
    }
    const item = consoleEntry(entry, type, depth);
    if (type === "group" || type === "groupCollapsed") depth++;
    return item;
  };
}

function showConsoleCount(panel) {
  const shown = panel.console.children.length;
  panel.consoleCount.textContent = shown ? String(shown) : "";
  panel.consoleEmpty.hidden = shown > 0;
}

function consoleEntry(entry, type, depth) {
  const item = element("li", `entry entry-${STYLED_CONSOLE_TYPES.has(type) ? type : "other"}`);
  item.dataset.type = type;
  if (depth > 0) item.style.setProperty("--depth", String(depth));

  const time = element("time", "entry-time");
  const date = new Date(entry?.timestamp);
  if (Number.isNaN(date.getTime())) {
    time.textContent = "—";
  } else {
    time.dateTime = date.toISOString();
    time.title = date.toISOString();
    time.textContent = timeFormat.format(date);
  }

  const badge = element("span", "entry-type");
  badge.textContent = type;

  const message = element("div", "entry-data");
  const data = Array.isArray(entry?.data) ? entry.data : [];
  if (type === "table" && tableRows(data[0])) {
    message.append(consoleTable(data[0]));
  } else {
    for (const value of data) message.append(consoleValue(value));
  }

  item.append(time, badge, message);
  return item;
}

/**
 * Strings print as they are, like in a browser console; a logged Error (serialised as its name,
 * message and stack) prints as "Name: message" over its stack; everything else as JSON.
 */
function consoleValue(value) {
  const part = element("span", "value");
  if (typeof value === "string") {
    part.classList.add("value-text");
    part.textContent = value;
    return part;
  }
  if (isSerialisedError(value)) {
    part.classList.add("value-error");
    part.textContent = `${value.name}: ${value.message}`;
    if (typeof value.stack === "string" && value.stack.trim() !== "") {
      const stack = element("span", "value-stack");
      stack.textContent = value.stack.trimEnd();
      part.append(stack);
    }
    return part;
  }
  const compact = JSON.stringify(value) ?? String(value);
  part.classList.add("json");
  part.append(highlightJson(compact.length > 72 ? JSON.stringify(value, null, 2) : compact));
  return part;
}

function isSerialisedError(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return (
    typeof value.name === "string" &&
    typeof value.message === "string" &&
    keys.every((key) => key === "name" || key === "message" || key === "stack")
  );
}

/** `console.table` data: an array or object whose values are all objects (or arrays). */
function tableRows(value) {
  if (value === null || typeof value !== "object") return null;
  const rows = Object.entries(value);
  if (rows.length === 0 || !rows.every(([, row]) => row !== null && typeof row === "object")) return null;
  return rows;
}

function consoleTable(value) {
  const rows = tableRows(value);
  const columns = [...new Set(rows.flatMap(([, row]) => Object.keys(row)))];
  const table = element("table", "console-table");
  const head = table.createTHead().insertRow();
  for (const name of ["(index)", ...columns]) {
    const cell = element("th");
    cell.scope = "col";
    cell.textContent = name;
    head.append(cell);
  }
  const body = table.createTBody();
  for (const [index, row] of rows) {
    const tr = body.insertRow();
    const indexCell = element("th");
    indexCell.scope = "row";
    indexCell.textContent = index;
    tr.append(indexCell);
    for (const column of columns) {
      const cell = tr.insertCell();
      if (Object.hasOwn(row, column)) cell.append(consoleValue(row[column]));
    }
  }
  const wrapper = element("div", "table-scroll");
  wrapper.append(table);
  return wrapper;
}

const JSON_TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(?:true|false)\b|\bnull\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/** Colours JSON text by token type, built from text nodes only. */
function highlightJson(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(JSON_TOKEN)) {
    if (match.index > last) fragment.append(text.slice(last, match.index));
    const [token, string, colon] = match;
    let kind;
    if (string !== undefined) kind = colon ? "key" : "string";
    else if (token === "null") kind = "null";
    else if (token === "true" || token === "false") kind = "boolean";
    else kind = "number";
    const span = element("span", `json-${kind}`);
    span.textContent = colon ? string : token;
    fragment.append(span);
    if (colon) fragment.append(colon);
    last = match.index + token.length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}

function formatDuration(ms) {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function element(tag, className = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}
