// Entry point of the demo page: wires the editor, the language switch, the example picker, the
// limit inputs, the input box (one input, or a batch's array of inputs), the "Keep state" switch
// (runs in a session), the API key field and the Run, Share and Copy-as-curl buttons to the API
// and the output panel, which shows a run's console output as it arrives, or a batch's results as
// a table.

import { apiKeyField } from "./api-key.js";
import { execute, fetchExamples, RequestFailure, runBatch } from "./api.js";
import { curlCommand, KEY_VARIABLE } from "./curl.js";
import { createEditor, isLanguage } from "./editor.js";
import {
  outputPanel,
  renderBatch,
  renderFailure,
  renderInvalidInput,
  renderOutcome,
  renderRunning,
  renderStarted,
} from "./render.js";
import { keepStateSwitch } from "./session.js";
import { isShareFragment, readSharedRun, shareLink } from "./share.js";
import { TYPESCRIPT_EXAMPLES } from "./typescript-examples.js";

const DRAFT_KEY = "jsbox.draft";
const INPUT_DRAFT_KEY = "jsbox.input";
const LANGUAGE_KEY = "jsbox.language";
const BATCH_KEY = "jsbox.batch";
const STARTER_CODE = `// Write JavaScript (or switch to TypeScript) and press Ctrl+Enter (⌘+Enter on a Mac) to run it.
// console.* output is captured; the value of the last expression is the result.
const greet = (name) => \`Hello, \${name}!\`;
console.log(greet("sandbox"));

({ answer: 6 * 7, when: new Date(0).toISOString() });
`;

const form = document.getElementById("run-form");
const picker = document.getElementById("example");
const runButton = document.getElementById("run");
const languageSwitch = form.elements.language;
const memoryInput = document.getElementById("memory-limit-mb");
const limitInputs = [document.getElementById("timeout-ms"), memoryInput];
const inputBox = document.getElementById("input-box");
const inputField = document.getElementById("input-json");
const batchToggle = document.getElementById("batch-mode");
/** What the input box asks for: one input, or a batch's inputs. */
const INPUT_MODES = {
  single: { label: "Input, as JSON", unit: "JSON, optional", placeholder: '{"items": [{"price": 3, "qty": 2}]}' },
  batch: { label: "Inputs, as a JSON array", unit: "JSON array, one run each", placeholder: '[1, 2, 3]' },
};
const shared = {
  box: document.getElementById("shared"),
  label: document.getElementById("shared-label"),
  text: document.getElementById("shared-text"),
  status: document.getElementById("share-status"),
};
const panel = outputPanel(document);

/**
 * The example last loaded into the editor; while the text is unchanged, runs of a bundled one
 * send its name.
 */
let loadedExample = null;
let running = false;

const savedLanguage = readDraft(LANGUAGE_KEY);
const editor = createEditor(document.getElementById("editor"), {
  text: readDraft() ?? STARTER_CODE,
  language: isLanguage(savedLanguage) ? savedLanguage : "javascript",
  hint: document.getElementById("editor-hint"),
  onChange(text) {
    saveDraft(text);
    markExampleEdited(text);
    forgetShareFragment();
  },
  onRun: run,
});
const apiKey = apiKeyField(document.getElementById("api-key"), {
  onChange() {
    // A key can open the examples that the anonymous tier could not see.
    if (picker.disabled) loadExamples();
  },
});

const keepState = keepStateSwitch(
  { toggle: document.getElementById("keep-state"), status: document.getElementById("session-status") },
  { apiKey, settings: sessionSettings, onToggle: showSessionMode },
);

languageSwitch.value = editor.language;
for (const radio of languageSwitch) {
  radio.addEventListener("change", () => {
    setLanguage(languageSwitch.value);
    forgetShareFragment();
  });
}

showPlatformShortcuts();
loadExamples();
await openSharedRun();
window.addEventListener("hashchange", openSharedRun);

// Ctrl/Cmd+Enter runs from anywhere on the page; the editor handles (and claims) its own.
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.isComposing) return;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    run();
  }
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  run();
});

for (const input of limitInputs) {
  input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
}

batchToggle.checked = readDraft(BATCH_KEY) === "true";
showInputMode();
keepState.batchMode = batchToggle.checked;
batchToggle.addEventListener("change", () => {
  showInputMode();
  keepState.batchMode = batchToggle.checked;
  inputField.removeAttribute("aria-invalid");
  saveDraft(String(batchToggle.checked), BATCH_KEY);
  forgetShareFragment();
});

inputField.value = readDraft(INPUT_DRAFT_KEY) ?? "";
inputBox.open = inputField.value.trim() !== "" || batchToggle.checked;
inputField.addEventListener("input", () => {
  inputField.removeAttribute("aria-invalid");
  saveDraft(inputField.value, INPUT_DRAFT_KEY);
  forgetShareFragment();
});

picker.addEventListener("change", () => {
  const option = picker.selectedOptions[0];
  if (!option?.value) return;
  if (loadedExample) loadedExample.option.textContent = loadedExample.name;
  loadedExample = {
    name: option.value,
    source: option.dataset.source ?? "",
    bundled: option.dataset.bundled === "true",
    option,
  };
  setLanguage(option.dataset.language);
  editor.value = loadedExample.source;
  saveDraft(loadedExample.source);
  markExampleEdited(loadedExample.source);
});

document.getElementById("share").addEventListener("click", async () => {
  const limits = readLimits();
  if (!limits) return;
  const input = readInput();
  if (input === null) return;
  const sharedInput = input.value === undefined ? {} : { input: inputField.value };
  const batch = batchToggle.checked ? { batch: true } : {};
  const link = await shareLink(
    { code: editor.value, ...languageField(), ...sharedInput, ...batch, ...limits },
    window.location,
  );
  // The address bar holds the link too, until the code is edited.
  history.replaceState(null, "", link);
  await offerCopy(
    "Link to this run",
    link,
    "Link copied to the clipboard. Opening it restores this code, its language, input (or batch) and limits.",
  );
});

document.getElementById("copy-curl").addEventListener("click", async () => {
  const request = buildRequest();
  if (!request) return;
  const path = batchToggle.checked ? "api/batch" : (keepState.on && keepState.executePath) || "api/execute";
  const url = new URL(path, window.location.href).href;
  const command = curlCommand(url, request, { withKey: apiKey.value !== "" });
  const keyNote = apiKey.value === "" ? "" : ` It reads your key from $${KEY_VARIABLE}: set that variable first.`;
  await offerCopy("curl command", command, `curl command copied to the clipboard.${keyNote}`);
});

// The page is ready for input once the editor exists and Run works.
runButton.disabled = false;
performance.mark("jsbox:interactive");

/** Highlights the editor's text as `language` and shows it in the switch; the choice is kept. */
function setLanguage(language) {
  editor.language = language;
  languageSwitch.value = language;
  saveDraft(language, LANGUAGE_KEY);
}

/** `{ language: "typescript" }` for TypeScript; nothing for JavaScript, the API's default. */
function languageField() {
  return editor.language === "javascript" ? {} : { language: editor.language };
}

/** Labels the picked example "(edited)" once the editor no longer holds its source. */
function markExampleEdited(text) {
  if (!loadedExample) return;
  const { name, source, option } = loadedExample;
  option.textContent = text === source ? name : `${name} (edited)`;
}

async function run() {
  if (running) return;
  const request = buildRequest();
  if (!request) return;
  const problem = apiKey.problem();
  if (problem) {
    renderInvalidInput(panel, problem);
    apiKey.focus();
    return;
  }

  setRunning(true);
  renderRunning(panel);
  revealOutput();
  if (batchToggle.checked) {
    await runAsBatch(request);
    return;
  }
  if (keepState.on) {
    await runInSession(request);
    return;
  }
  let live = null;
  try {
    const outcome = await execute(request, {
      apiKey: apiKey.value,
      onStart() {
        live = renderStarted(panel);
      },
      onLog(entry) {
        live.log(entry);
      },
    });
    live?.end();
    renderOutcome(panel, outcome);
  } catch (error) {
    live?.end();
    const failure = error instanceof RequestFailure ? error : new RequestFailure("Something went wrong", String(error));
    renderFailure(panel, failure);
  } finally {
    setRunning(false);
  }
}

/** Runs `request` in the switch's session and shows the outcome; Run is free again afterwards. */
async function runInSession(request) {
  try {
    renderOutcome(panel, await keepState.run(request));
  } catch (error) {
    const failure = error instanceof RequestFailure ? error : new RequestFailure("Something went wrong", String(error));
    renderFailure(panel, failure);
  } finally {
    setRunning(false);
  }
}

/** Sends a batch's `request` and shows its results as a table; Run is free again afterwards. */
async function runAsBatch(request) {
  try {
    renderBatch(panel, request.inputs, await runBatch(request, { apiKey: apiKey.value }));
  } catch (error) {
    const failure = error instanceof RequestFailure ? error : new RequestFailure("Something went wrong", String(error));
    renderFailure(panel, failure);
  } finally {
    setRunning(false);
  }
}

/**
 * The body for `POST /api/execute`, in batch mode for `POST /api/batch`, with "Keep state" on for
 * a session's execute (without `memoryLimitMb`: the session's was set when it started); `null`
 * (with the problem shown) when a limit or the input is unreadable.
 */
function buildRequest() {
  const limits = readLimits();
  if (!limits) return null;
  const input = readInput();
  if (input === null) return null;
  const code = editor.value;
  const unchangedExample = loadedExample?.bundled && code === loadedExample.source;
  const source = unchangedExample ? { file: loadedExample.name } : { code };
  const inputs = batchToggle.checked ? { inputs: input.value } : input.value === undefined ? {} : { input: input.value };
  if (keepState.on) delete limits.memoryLimitMb;
  return { ...source, ...languageField(), ...inputs, ...limits };
}

/** The body of `POST /api/sessions`: the memory limit typed; `null` (with the problem shown) when unreadable. */
function sessionSettings() {
  const problem = apiKey.problem();
  if (problem) {
    renderInvalidInput(panel, problem);
    apiKey.focus();
    return null;
  }
  const limits = readLimits();
  if (!limits) return null;
  return limits.memoryLimitMb === undefined ? {} : { memoryLimitMb: limits.memoryLimitMb };
}

/**
 * With "Keep state" on, the memory limit is the session's (read-only until it is switched off)
 * and batches, which run in fresh runtimes, are off.
 */
function showSessionMode(on) {
  memoryInput.readOnly = on;
  memoryInput.setAttribute("aria-describedby", on ? "limits-hint session-memory-hint" : "limits-hint");
  memoryInput.title = on ? document.getElementById("session-memory-hint").textContent.replace(/\s+/g, " ").trim() : "";
  batchToggle.disabled = on;
  inputBox.querySelector(".batch-off-hint").hidden = !on;
}

/**
 * `{ value }` with the input field's JSON parsed (`undefined` when empty; in batch mode a non-empty
 * array), or `null` (with the problem shown).
 */
function readInput() {
  const text = inputField.value.trim();
  const batch = batchToggle.checked;
  if (text === "" && !batch) return { value: undefined };
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return refuseInput(
      text === ""
        ? "A batch needs its inputs: enter a JSON array, such as [1, 2, 3]."
        : `The ${batch ? "inputs are" : "input is"} not valid JSON: ${error.message}`,
    );
  }
  if (batch && !Array.isArray(value)) {
    return refuseInput("A batch's inputs must be a JSON array, such as [1, 2, 3]: one run per item.");
  }
  if (batch && value.length === 0) {
    return refuseInput("A batch's inputs must hold at least one item, such as [1, 2, 3].");
  }
  inputField.removeAttribute("aria-invalid");
  return { value };
}

/** Shows why the input box's text cannot be sent and puts the focus there; `null`. */
function refuseInput(message) {
  renderInvalidInput(panel, message);
  inputField.setAttribute("aria-invalid", "true");
  inputBox.open = true;
  inputField.focus();
  return null;
}

/** Labels the input box for one input or a batch's inputs, as the batch switch says. */
function showInputMode() {
  const batch = batchToggle.checked;
  const mode = INPUT_MODES[batch ? "batch" : "single"];
  document.getElementById("input-label").textContent = mode.label;
  document.getElementById("input-unit").textContent = mode.unit;
  inputField.placeholder = mode.placeholder;
  inputBox.querySelector(".single-hint").hidden = batch;
  inputBox.querySelector(".batch-hint").hidden = !batch;
}

/** `{ timeoutMs?, memoryLimitMb? }` as typed, or `null` (with the problem shown) when one is unreadable. */
function readLimits() {
  const limits = {};
  for (const input of limitInputs) {
    const text = input.value.trim();
    // A number input reports text it cannot parse ("1e", "--") as an empty value with badInput.
    if (text === "" && !input.validity.badInput) continue;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) {
      renderInvalidInput(panel, `${input.dataset.describe} must be a whole number of at least 1, or empty for the default.`);
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return null;
    }
    input.removeAttribute("aria-invalid");
    limits[input.name] = value;
  }
  return limits;
}

/** Restores the code, language, input (or batch) and limits of a share link opened in this tab; the draft is kept until edited. */
async function openSharedRun() {
  if (!isShareFragment(window.location.hash)) return;
  try {
    const sharedRun = await readSharedRun(window.location.hash);
    setLanguage(sharedRun.language);
    editor.value = sharedRun.code;
    inputField.value = sharedRun.input ?? "";
    batchToggle.checked = sharedRun.batch;
    showInputMode();
    keepState.batchMode = sharedRun.batch;
    inputBox.open = inputField.value !== "" || sharedRun.batch;
    for (const input of limitInputs) input.value = sharedRun[input.name] ?? "";
    if (loadedExample) loadedExample.option.textContent = loadedExample.name;
    loadedExample = null;
    picker.value = "";
  } catch (error) {
    renderInvalidInput(panel, error.message);
  }
}

/** Once the shared code is edited the link in the address bar no longer describes it. */
function forgetShareFragment() {
  if (!isShareFragment(window.location.hash)) return;
  const { pathname, search } = window.location;
  history.replaceState(null, "", pathname + search);
}

/** Shows `text` under the buttons and copies it to the clipboard, saying whether that worked. */
async function offerCopy(label, text, copiedMessage) {
  shared.label.textContent = label;
  shared.text.value = text;
  shared.box.hidden = false;
  try {
    await navigator.clipboard.writeText(text);
    shared.status.textContent = copiedMessage;
  } catch {
    // No clipboard (a page served over plain HTTP from another machine) or no permission.
    shared.status.textContent = "The clipboard is not available here: copy the text from the field above.";
    shared.text.focus();
    shared.text.select();
  }
}

/** On narrow screens the output sits below the editor: bring its status into view. */
function revealOutput() {
  if (panel.status.getBoundingClientRect().top < window.innerHeight) return;
  const smooth = !window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  panel.status.scrollIntoView({ block: "center", behavior: smooth ? "smooth" : "auto" });
}

function setRunning(isRunning) {
  running = isRunning;
  // aria-disabled rather than disabled: a disabled button would drop keyboard focus mid-run.
  runButton.setAttribute("aria-disabled", String(isRunning));
  runButton.setAttribute("aria-busy", String(isRunning));
  runButton.querySelector(".run-label").textContent = isRunning ? "Running…" : "Run";
}

async function loadExamples() {
  try {
    const bundled = await fetchExamples({ apiKey: apiKey.value });
    const groups = [
      exampleGroup("JavaScript", bundled, { language: "javascript", bundled: true }),
      exampleGroup("TypeScript", TYPESCRIPT_EXAMPLES, { language: "typescript", bundled: false }),
    ];
    picker.replaceChildren(new Option("Choose an example…", ""), ...groups);
    picker.disabled = bundled.length === 0;
    picker.removeAttribute("title");
  } catch (error) {
    picker.replaceChildren(new Option("Examples unavailable", ""));
    picker.title = error.message;
  }
}

/**
 * An <optgroup> of examples in `language`; `bundled` ones are the sandbox's, which a run of the
 * unchanged source names instead of sending it.
 */
function exampleGroup(label, examples, { language, bundled }) {
  const group = document.createElement("optgroup");
  group.label = label;
  for (const { name, source } of examples) {
    const option = new Option(name, name);
    option.dataset.source = source;
    option.dataset.language = language;
    option.dataset.bundled = String(bundled);
    group.append(option);
  }
  return group;
}

function readDraft(key = DRAFT_KEY) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function saveDraft(text, key = DRAFT_KEY) {
  try {
    localStorage.setItem(key, text);
  } catch {
    // Storage can be full or switched off; the draft is a convenience, not a requirement.
  }
}

function showPlatformShortcuts() {
  const platform = navigator.userAgentData?.platform ?? navigator.platform ?? "";
  if (!/mac|iphone|ipad/i.test(platform)) return;
  for (const key of document.querySelectorAll(".mod-key")) key.textContent = "⌘";
  document.getElementById("run-shortcut").textContent = "⌘ ↵";
}
