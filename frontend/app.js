// Entry point of the demo page: wires the editor, the example picker, the limit inputs and the Run
// button to the API and the output panel.

import { execute, fetchExamples, RequestFailure } from "./api.js";
import { createEditor } from "./editor.js";
import { outputPanel, renderFailure, renderInvalidInput, renderOutcome, renderRunning } from "./render.js";

const DRAFT_KEY = "jsbox.draft";
const STARTER_CODE = `// Write JavaScript and press Ctrl+Enter (⌘+Enter on a Mac) to run it.
// console.* output is captured; the value of the last expression is the result.
const greet = (name) => \`Hello, \${name}!\`;
console.log(greet("sandbox"));

({ answer: 6 * 7, when: new Date(0).toISOString() });
`;

const form = document.getElementById("run-form");
const picker = document.getElementById("example");
const runButton = document.getElementById("run");
const limitInputs = [document.getElementById("timeout-ms"), document.getElementById("memory-limit-mb")];
const panel = outputPanel(document);

/** The example last loaded into the editor; while the text is unchanged, runs send its name. */
let loadedExample = null;
let running = false;

const editor = createEditor(document.getElementById("code"), document.querySelector(".gutter"), {
  onChange(text) {
    saveDraft(text);
    markExampleEdited(text);
  },
});
editor.value = readDraft() ?? STARTER_CODE;

showPlatformShortcuts();
loadExamples();

// Ctrl/Cmd+Enter runs from anywhere on the page, not only from the editor.
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing) {
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

picker.addEventListener("change", () => {
  const option = picker.selectedOptions[0];
  if (!option?.value) return;
  if (loadedExample) loadedExample.option.textContent = loadedExample.name;
  loadedExample = { name: option.value, source: option.dataset.source ?? "", option };
  editor.value = loadedExample.source;
  saveDraft(loadedExample.source);
  markExampleEdited(loadedExample.source);
});

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

  setRunning(true);
  renderRunning(panel);
  revealOutput();
  try {
    renderOutcome(panel, await execute(request));
  } catch (error) {
    const failure = error instanceof RequestFailure ? error : new RequestFailure("Something went wrong", String(error));
    renderFailure(panel, failure);
  } finally {
    setRunning(false);
  }
}

/** The body for `POST /api/execute`, or `null` (with the problem shown) when a limit is unreadable. */
function buildRequest() {
  const code = editor.value;
  const request =
    loadedExample && code === loadedExample.source ? { file: loadedExample.name } : { code };

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
    request[input.name] = value;
  }
  return request;
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
    const examples = await fetchExamples();
    const options = examples.map(({ name, source }) => {
      const option = new Option(name, name);
      option.dataset.source = source;
      return option;
    });
    picker.replaceChildren(new Option("Choose an example…", ""), ...options);
    picker.disabled = options.length === 0;
  } catch (error) {
    picker.replaceChildren(new Option("Examples unavailable", ""));
    picker.title = error.message;
  }
}

function readDraft() {
  try {
    return localStorage.getItem(DRAFT_KEY);
  } catch {
    return null;
  }
}

function saveDraft(text) {
  try {
    localStorage.setItem(DRAFT_KEY, text);
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
