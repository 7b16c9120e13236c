// Drives the demo page in headless Chromium (Debian's /usr/bin/chromium, through playwright-core)
// against a running ingress. Started by tests/tests/browser.rs, which starts the real ingress and
// sandbox first; it can also be pointed at any running service by hand:
//
//   BASE_URL=http://127.0.0.1:8080 node tests/browser/demo-page.mjs   (screenshots: tests/artifacts/)
//
// Each step prints "ok - <step>"; the first failed assertion ends the run with exit code 1. Lines
// starting with "#" report measurements (the page's transferred size and time to interactive).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { inflateRawSync } from "node:zlib";
import { chromium } from "playwright-core";

const BASE_URL = required("BASE_URL");
const ARTIFACTS_DIR = path.resolve(process.env.ARTIFACTS_DIR ?? fileURLToPath(new URL("../artifacts", import.meta.url)));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };
/** The ingress's request body limit (its MAX_BODY_BYTES; 1 MiB unless the caller set another). */
const MAX_BODY_BYTES = Number(process.env.MAX_BODY_BYTES ?? 1024 * 1024);
/** What the page may weigh on the wire, all its files and the examples' list together (gzip). */
const PAGE_WEIGHT_BUDGET_BYTES = 250_000;

// The whole run must end on its own even if the browser hangs.
setTimeout(() => {
  console.error("not ok - the browser test did not finish within 180 s");
  process.exit(1);
}, 180_000).unref();

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
}

async function step(name, body) {
  try {
    await body();
    console.log(`ok - ${name}`);
  } catch (error) {
    console.error(`not ok - ${name}`);
    throw error;
  }
}

/** Opens the page in a new context and records everything that would show up as a problem. */
async function openPage(browser, options, pagePath = "/") {
  const context = await browser.newContext({ baseURL: BASE_URL, ...options });
  const page = await context.newPage();
  const problems = { console: [], pageErrors: [], cspViolations: [], failedRequests: [] };

  // CSP violations also reach the console, but the event names the blocked directive.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (event) => {
      window.__cspViolations.push(`${event.violatedDirective}: ${event.blockedURI || "inline"}`);
    });
  });
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      problems.console.push(`${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => problems.pageErrors.push(String(error)));
  page.on("requestfailed", (request) => problems.failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`));
  page.on("response", (response) => {
    if (response.status() >= 400) problems.failedRequests.push(`${response.url()}: HTTP ${response.status()}`);
  });

  const response = await page.goto(pagePath);
  assert.equal(response.status(), 200, `GET ${pagePath} answers 200`);
  const csp = response.headers()["content-security-policy"] ?? "";
  assert.match(csp, /script-src 'self'/, "the page is served with a strict Content-Security-Policy");

  problems.check = async (allowed = () => false) => {
    problems.cspViolations = await page.evaluate(() => window.__cspViolations);
    const unexpected = (list) => list.filter((entry) => !allowed(entry));
    assert.deepEqual(unexpected(problems.cspViolations), [], "no CSP violations");
    assert.deepEqual(unexpected(problems.console), [], "no console errors or warnings");
    assert.deepEqual(unexpected(problems.pageErrors), [], "no uncaught page errors");
    assert.deepEqual(unexpected(problems.failedRequests), [], "no failed requests");
  };
  return { context, page, problems };
}

/** Clicks Run (or presses the shortcut) and returns the JSON body the page posted. */
async function runAndCaptureRequest(page, trigger) {
  const posted = page.waitForRequest((request) => request.url().endsWith("/api/execute") && request.method() === "POST");
  await trigger();
  const request = await posted;
  await page.locator("#status:not(.status-running)").waitFor();
  return request.postDataJSON();
}

/** Clicks Run (or presses the shortcut) in batch mode and returns the JSON body the page posted. */
async function runAndCaptureBatch(page, trigger) {
  const posted = page.waitForRequest((request) => request.url().endsWith("/api/batch") && request.method() === "POST");
  await trigger();
  const request = await posted;
  await page.locator("#status:not(.status-running)").waitFor();
  return request.postDataJSON();
}

/** The rows of the batch's table as the page shows them. */
const batchRows = (page) =>
  page.locator("#batch-table tbody tr").evaluateAll((rows) =>
    rows.map((row) => {
      const cells = [...row.children];
      return {
        status: row.dataset.status,
        index: cells[0].textContent,
        input: cells[1].textContent,
        outcome: cells[2].textContent,
        kind: cells[2].dataset.kind,
        result: cells[3].textContent,
        console: cells[5].querySelector("summary")?.textContent ?? cells[5].textContent,
      };
    }),
  );

const consoleEntries = (page) =>
  page.locator("#console > li").evaluateAll((items) =>
    items.map((item) => ({
      type: item.dataset.type,
      className: item.className,
      time: item.querySelector("time")?.dateTime ?? "",
      values: [...item.querySelectorAll(".entry-data > .value")].map((value) => value.textContent),
    })),
  );

/** The editor's text as CodeMirror shows it (every line of the short texts used here is in view). */
async function editorText(page) {
  return (await page.locator("#editor .cm-line").allTextContents()).join("\n");
}

/**
 * Replaces the editor's text as a user would: select all, then type (insert) the new text.
 * (Playwright's fill selects with the DOM, which can leave CodeMirror's last, empty line behind.)
 */
async function fillEditor(page, text) {
  await page.getByLabel("JavaScript code").press("Control+a");
  await page.keyboard.insertText(text);
}

/** The visible line numbers (CodeMirror keeps one hidden extra to measure the gutter's width). */
function lineNumbers(page) {
  return page
    .locator("#editor .cm-lineNumbers .cm-gutterElement")
    .evaluateAll((numbers) => numbers.filter((number) => number.style.visibility !== "hidden").map((n) => n.textContent));
}

/** Where keyboard focus is: an element's id, or "editor text" inside CodeMirror's shadow root. */
function focusedElement(page) {
  return page.evaluate(() => {
    const inner = document.activeElement?.shadowRoot?.activeElement;
    if (inner) return inner.classList.contains("cm-content") ? "editor text" : `editor ${inner.className}`;
    return document.activeElement?.id ?? "";
  });
}

/** A colour from the page's custom properties, as getComputedStyle writes colours. */
function customColour(page, property) {
  return page.evaluate((property) => {
    const probe = document.createElement("span");
    probe.style.color = `var(${property})`;
    document.body.append(probe);
    const colour = getComputedStyle(probe).color;
    probe.remove();
    return colour;
  }, property);
}

/** The run a share link holds, decoded without the page's help. */
function decodeShareLink(link) {
  const fragment = new URL(link).hash;
  assert.match(fragment, /^#run=[\w-]+$/, "the run is in the fragment, base64url-encoded");
  return JSON.parse(inflateRawSync(Buffer.from(fragment.slice("#run=".length), "base64url")).toString("utf8"));
}

/** Runs a shell command line as a terminal would and returns what it printed. */
async function runInShell(command, env = {}) {
  const { stdout } = await promisify(execFile)("sh", ["-c", command], { env: { ...process.env, ...env }, timeout: 30_000 });
  return stdout;
}

/** Bytes on the wire and time to interactive of the page as it was just loaded (a fresh cache). */
function pageLoadFigures(page) {
  return page.evaluate(() => {
    const entries = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
    const sum = (field) => entries.reduce((total, entry) => total + entry[field], 0);
    const bundle = entries.find((entry) => entry.name.endsWith("/vendor/codemirror.js"));
    return {
      responses: entries.length,
      transferred: sum("transferSize"),
      decoded: sum("decodedBodySize"),
      bundleTransferred: bundle?.transferSize ?? 0,
      bundleDecoded: bundle?.decodedBodySize ?? 0,
      interactive: performance.getEntriesByName("jsbox:interactive")[0]?.startTime,
    };
  });
}

const kB = (bytes) => `${(bytes / 1000).toFixed(1)} kB`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  // Playwright adds --headless, --no-sandbox and a fresh temporary --user-data-dir itself. The rest
  // keep Chromium from calling out to Google's services, which a closed network refuses.
  args: [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

try {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const { context, page, problems } = await openPage(browser, { viewport: DESKTOP });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE_URL });
  const editor = page.getByLabel("JavaScript code");
  const picker = page.getByLabel("Example");
  const runButton = page.getByRole("button", { name: "Run" });
  const keyField = page.getByLabel("API key");
  const status = page.locator("#status");
  const result = page.locator("#result");
  const sharedText = page.locator("#shared-text");

  const examples = (await (await page.request.get("/api/examples")).json()).examples;
  const sourceOf = (name) => examples.find((example) => example.name === name).source;

  await step("the page loads its examples into the picker without errors", async () => {
    await page.locator("#example:enabled").waitFor();
    const names = (group) =>
      picker.locator(`optgroup[label="${group}"] > option`).evaluateAll((options) => options.map((o) => o.value));
    assert.deepEqual(await names("JavaScript"), examples.map((example) => example.name));
    assert.ok((await names("JavaScript")).includes("simple.js"), "simple.js is among the examples");
    assert.ok((await names("JavaScript")).includes("progress.js"), "progress.js is among the examples");
    assert.deepEqual(await names("TypeScript"), ["types.ts", "generics.ts"], "the page's own TypeScript examples");
    await problems.check();
  });

  await step("the page weighs little on the wire and is interactive quickly (figures printed)", async () => {
    await page.locator("#run:enabled").waitFor();
    const figures = await pageLoadFigures(page);
    assert.ok(figures.interactive > 0, "the page marks when it is interactive");
    assert.ok(figures.bundleTransferred > 0, "the editor's bundle was loaded");
    assert.ok(
      figures.bundleTransferred < figures.bundleDecoded / 2,
      `the bundle is sent compressed (${figures.bundleTransferred} of ${figures.bundleDecoded} bytes)`,
    );
    assert.ok(
      figures.transferred <= PAGE_WEIGHT_BUDGET_BYTES,
      `the page load moved ${figures.transferred} bytes, over the budget of ${PAGE_WEIGHT_BUDGET_BYTES}`,
    );
    console.log(
      `# page load: ${kB(figures.transferred)} transferred (${kB(figures.decoded)} uncompressed) in ` +
        `${figures.responses} responses, of which the editor bundle ${kB(figures.bundleTransferred)} ` +
        `(${kB(figures.bundleDecoded)}); interactive ${Math.round(figures.interactive)} ms after navigation start`,
    );
  });

  await step("picking an example loads its source, and running it unchanged sends its name", async () => {
    await picker.selectOption("simple.js");
    const source = sourceOf("simple.js");
    assert.equal(await editorText(page), source);
    const lines = source.split("\n").length;
    assert.deepEqual(await lineNumbers(page), Array.from({ length: lines }, (_, i) => String(i + 1)), "one line number per line");

    const body = await runAndCaptureRequest(page, () => runButton.click());
    assert.deepEqual(body, { file: "simple.js" });
    assert.match(await status.getAttribute("class"), /status-success/);
    assert.equal(JSON.parse(await result.textContent()), 3);
    assert.match(await page.locator("#execution-time").textContent(), /^Ran in \d+(\.\d+)? (ms|s)$/);
  });

  await step("console entries of every type are listed in order, each styled by its type", async () => {
    await picker.selectOption("log.js");
    await runAndCaptureRequest(page, () => runButton.click());
    assert.equal(JSON.parse(await result.textContent()), "logged");
    const entries = await consoleEntries(page);
    assert.deepEqual(
      entries.map((entry) => entry.type),
      ["log", "info", "warn", "error", "debug", "table"],
    );
    for (const entry of entries.filter((entry) => entry.type !== "table")) {
      assert.match(entry.className, new RegExp(`\\bentry-${entry.type}\\b`));
    }
    assert.equal(await page.locator("#console .console-table").count(), 1, "console.table renders a table");
  });

  await step("typed code runs with Ctrl+Enter from the editor, which inserts nothing, and shows its result", async () => {
    const code = [
      'console.log("hello from the test", 21 * 2);',
      "console.warn({ careful: true });",
      '({ sum: [1, 2, 3].reduce((a, b) => a + b, 0), label: "done" });',
    ].join("\n");
    await fillEditor(page, code);
    assert.match(await picker.locator("option:checked").textContent(), /\(edited\)$/, "the picked example shows as edited");
    const body = await runAndCaptureRequest(page, () => editor.press("Control+Enter"));
    assert.deepEqual(body, { code }, "edited code is sent as code, not as the example's name");
    assert.equal(await editorText(page), code, "Ctrl+Enter ran the code instead of inserting a line");
    assert.equal(await focusedElement(page), "editor text", "the editor keeps the focus");

    assert.match(await status.getAttribute("class"), /status-success/);
    assert.deepEqual(JSON.parse(await result.textContent()), { sum: 6, label: "done" });
    const entries = await consoleEntries(page);
    assert.deepEqual(
      entries.map(({ type, values }) => ({ type, values })),
      [
        { type: "log", values: ["hello from the test", "42"] },
        { type: "warn", values: ['{"careful":true}'] },
      ],
    );
    for (const entry of entries) assert.ok(!Number.isNaN(Date.parse(entry.time)), `timestamp ${entry.time}`);
    assert.equal(await page.locator("#console-count").textContent(), "2");
    assert.equal(await page.evaluate(() => localStorage.getItem("jsbox.draft")), code, "the draft is kept in localStorage");
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-desktop.png"), fullPage: true });
  });

  await step("the code is highlighted: tokens carry highlight classes in the page's syntax colours", async () => {
    await fillEditor(page, '// a note\nconst answer = "forty" + 2;\nif (true) answer;');
    const tokens = (selector) => page.locator(`#editor ${selector}`).allTextContents();
    assert.deepEqual(await tokens(".tok-comment"), ["// a note"]);
    assert.deepEqual(await tokens(".tok-keyword"), ["const", "if"]);
    assert.deepEqual(await tokens(".tok-string"), ['"forty"']);
    assert.deepEqual(await tokens(".tok-number"), ["2"]);
    assert.deepEqual(await tokens(".tok-bool"), ["true"]);
    assert.deepEqual(await tokens(".tok-variableName.tok-definition"), ["answer"]);
    const colourOf = (selector) => page.locator(`#editor ${selector}`).first().evaluate((token) => getComputedStyle(token).color);
    assert.equal(await colourOf(".tok-keyword"), await customColour(page, "--syntax-keyword"));
    assert.equal(await colourOf(".tok-string"), await customColour(page, "--syntax-string"));
    assert.notEqual(await colourOf(".tok-keyword"), await customColour(page, "--text"));
  });

  await step("brackets are matched: the bracket at the caret and its partner are marked", async () => {
    await fillEditor(page, "f(a[1], (b));");
    await editor.press("End");
    await editor.press("ArrowLeft");
    const marked = await page.locator("#editor .cm-matchingBracket").allTextContents();
    assert.deepEqual(marked, ["(", ")"]);
  });

  await step("Tab indents and Shift+Tab outdents (undoably), Enter indents by the syntax", async () => {
    await picker.selectOption("simple.js");
    const source = sourceOf("simple.js");
    await editor.press("Control+Home");
    await editor.press("Tab");
    assert.equal(await editorText(page), `  ${source}`, "Tab indents the line");
    assert.equal(await focusedElement(page), "editor text", "Tab kept the focus");
    await editor.press("Control+z");
    assert.equal(await editorText(page), source, "Ctrl+Z undoes the indent");

    await fillEditor(page, "if (ok) {");
    await editor.press("End");
    await editor.press("Enter");
    await page.keyboard.type("y;");
    await editor.press("Enter");
    await page.keyboard.type("}");
    assert.equal(await editorText(page), "if (ok) {\n  y;\n}", "the block's body is indented and its } is not");
    assert.deepEqual(await lineNumbers(page), ["1", "2", "3"], "the line numbers follow typed lines");
    await editor.press("Control+a");
    await editor.press("Tab");
    assert.equal(await editorText(page), "  if (ok) {\n    y;\n  }", "Tab indents every selected line");
    await editor.press("Shift+Tab");
    await editor.press("Shift+Tab");
    assert.equal(await editorText(page), "if (ok) {\ny;\n}", "Shift+Tab outdents every selected line");
  });

  await step("Escape then Tab (or Shift+Tab) moves focus out of the editor", async () => {
    await editor.press("Escape");
    await page.keyboard.press("Shift+Tab");
    assert.equal(await focusedElement(page), "run", "focus moved back to the Run button");
    await page.keyboard.press("Tab");
    assert.equal(await focusedElement(page), "editor text", "Tab from the Run button enters the editor");
    const ring = await page.locator("#editor").evaluate((host) => getComputedStyle(host).outlineStyle);
    assert.equal(ring, "solid", "the focused editor shows a focus ring");
    // Any other key ends the moment in which Tab moves focus.
    await page.keyboard.press("Control+End");
    await page.keyboard.press("Tab");
    assert.equal(await focusedElement(page), "editor text", "without Escape, Tab stays in the editor");
    await page.keyboard.press("Escape");
    await page.keyboard.press("Tab");
    assert.equal(await focusedElement(page), "input-summary", "focus moved on to the input box, after the editor");
  });

  await step("Ctrl+F opens the search panel, finds every match, and Escape returns to the text", async () => {
    await fillEditor(page, "let spins = 0;\nspins++;\nconsole.log(spins);");
    await editor.press("Control+f");
    const find = page.getByRole("textbox", { name: "Find" });
    await find.waitFor();
    assert.equal(await focusedElement(page), "editor cm-textfield", "the search field has the focus");
    // Typed key by key: the panel takes the query as keys are released, as they are when people type.
    await find.pressSequentially("spins");
    await find.press("Enter");
    assert.equal(await page.locator("#editor .cm-searchMatch").count(), 3, "every match is marked");
    assert.equal(await page.locator("#editor .cm-searchMatch-selected").count(), 1, "Enter selects the next match");
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-search.png") });
    await find.press("Escape");
    assert.equal(await page.locator("#editor .cm-search").count(), 0, "Escape closes the panel");
    assert.equal(await focusedElement(page), "editor text");
  });

  await step("Ctrl+Z undoes typing and Ctrl+Shift+Z redoes it; loading an example is one step of its own", async () => {
    await picker.selectOption("simple.js");
    const source = sourceOf("simple.js");
    await editor.press("Control+End");
    await page.keyboard.type("\n// more");
    assert.equal(await editorText(page), `${source}\n// more`);
    await editor.press("Control+z");
    assert.equal(await editorText(page), source, "undo removes what was typed");
    await editor.press("Control+Shift+Z");
    assert.equal(await editorText(page), `${source}\n// more`, "redo brings it back");
    await editor.press("Control+z");
    await editor.press("Control+z");
    assert.notEqual(await editorText(page), source, "undo goes back past the example's loading");
  });

  await step("Share puts the code and limits in the link's fragment, and opening it restores them", async () => {
    const code = "// shared run\nconst words = ['it\\'s', \"quoted\"];\nconsole.log(words.join(' '));\nwords.length * 7;";
    await fillEditor(page, code);
    await page.getByLabel("Timeout").fill("1234");
    await page.getByLabel("Memory").fill("32");
    await page.getByRole("button", { name: "Share" }).click();
    await page.locator("#share-status", { hasText: "Link copied to the clipboard" }).waitFor();
    const link = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(await sharedText.inputValue(), link, "the link is shown as well as copied");
    assert.equal(page.url(), link, "the address bar holds the link");
    assert.equal(new URL(link).origin + new URL(link).pathname, new URL("/", BASE_URL).href);
    assert.deepEqual(decodeShareLink(link), { code, timeoutMs: 1234, memoryLimitMb: 32 });

    const opened = await context.newPage();
    await opened.goto(link);
    await opened.locator("#run:enabled").waitFor();
    assert.equal(await editorText(opened), code, "the code is restored");
    assert.equal(await opened.getByLabel("Timeout").inputValue(), "1234");
    assert.equal(await opened.getByLabel("Memory").inputValue(), "32");
    const body = await runAndCaptureRequest(opened, () => opened.getByRole("button", { name: "Run" }).click());
    assert.deepEqual(body, { code, timeoutMs: 1234, memoryLimitMb: 32 });
    assert.equal(JSON.parse(await opened.locator("#result").textContent()), 14);

    await opened.getByLabel("JavaScript code").press("Control+End");
    await opened.keyboard.type(" // edited");
    assert.equal(new URL(opened.url()).hash, "", "editing the shared code takes the stale link out of the address bar");
    await opened.close();
  });

  await step("Copy as curl gives a command that, run in a shell, answers what the page shows", async () => {
    await page.getByLabel("Memory").fill("");
    await runAndCaptureRequest(page, () => runButton.click());
    const shown = JSON.parse(await result.textContent());
    const shownLog = (await consoleEntries(page)).map((entry) => entry.values);

    await page.getByRole("button", { name: "Copy as curl" }).click();
    await page.locator("#share-status", { hasText: "curl command copied" }).waitFor();
    const command = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(await sharedText.inputValue(), command);
    assert.ok(
      command.startsWith(`curl -s ${new URL("/api/execute", BASE_URL).href} -H 'content-type: application/json' -d '`),
      command,
    );
    assert.doesNotMatch(command, /Authorization/, "no key, no Authorization header");
    const answer = JSON.parse(await runInShell(command));
    assert.equal(answer.status, "success");
    assert.deepEqual(answer.result, shown);
    assert.deepEqual(answer.log.map((entry) => entry.data), [["it's quoted"]]);
    assert.deepEqual(shownLog, [["it's quoted"]]);
    await page.getByLabel("Timeout").fill("");
  });

  await step("the language switch runs TypeScript, highlighted as such; share links and curl carry the language", async () => {
    const javascript = page.getByRole("radio", { name: "JavaScript" });
    const typescript = page.getByRole("radio", { name: "TypeScript" });
    assert.equal(await javascript.isChecked(), true, "JavaScript is the default");
    await page.locator("label[for=language-typescript]").click();
    assert.equal(await typescript.isChecked(), true);
    const tsEditor = page.getByLabel("TypeScript code");
    assert.equal(await tsEditor.count(), 1, "the editor is named for its language");
    assert.equal(await page.evaluate(() => localStorage.getItem("jsbox.language")), "typescript", "the choice is kept");

    const code = [
      "interface Point { x: number; y: number }",
      "const p: Point = { x: 3, y: 4 };",
      "const norm = <T extends Point>(q: T): number => Math.hypot(q.x, q.y);",
      'console.log("typed", norm(p));',
      "({ norm: norm(p) as number, unit: 'px' }) satisfies object;",
    ].join("\n");
    await tsEditor.press("Control+a");
    await page.keyboard.insertText(code);
    const tokens = (selector) => page.locator(`#editor ${selector}`).allTextContents();
    assert.ok((await tokens(".tok-keyword")).includes("interface"), "interface is a keyword");
    assert.ok((await tokens(".tok-typeName")).includes("Point"), "type names are highlighted as types");

    const body = await runAndCaptureRequest(page, () => runButton.click());
    assert.deepEqual(body, { code, language: "typescript" });
    assert.match(await status.getAttribute("class"), /status-success/, await status.textContent());
    assert.deepEqual(JSON.parse(await result.textContent()), { norm: 5, unit: "px" });
    assert.deepEqual((await consoleEntries(page)).map((entry) => entry.values), [["typed", "5"]]);

    await page.getByRole("button", { name: "Share" }).click();
    await page.locator("#share-status", { hasText: "Link copied to the clipboard" }).waitFor();
    const link = await sharedText.inputValue();
    assert.deepEqual(decodeShareLink(link), { code, language: "typescript" });
    // A fresh context: nothing kept from this tab's choice of language.
    const other = await browser.newContext({ baseURL: BASE_URL, viewport: DESKTOP });
    const opened = await other.newPage();
    await opened.goto(link);
    await opened.locator("#run:enabled").waitFor();
    assert.equal(await opened.getByRole("radio", { name: "TypeScript" }).isChecked(), true, "the language is restored");
    assert.equal(await editorText(opened), code);
    const openedBody = await runAndCaptureRequest(opened, () => opened.getByRole("button", { name: "Run" }).click());
    assert.deepEqual(openedBody, { code, language: "typescript" });
    assert.deepEqual(JSON.parse(await opened.locator("#result").textContent()), { norm: 5, unit: "px" });
    await other.close();

    // After Share, so that the status the next step waits for is not already there.
    await page.getByRole("button", { name: "Copy as curl" }).click();
    await page.locator("#share-status", { hasText: "curl command copied" }).waitFor();
    const command = await sharedText.inputValue();
    const answer = JSON.parse(await runInShell(command));
    assert.deepEqual(answer.result, { norm: 5, unit: "px" }, "the curl command sends the language");

    await picker.selectOption("types.ts");
    const example = await runAndCaptureRequest(page, () => runButton.click());
    assert.equal(example.language, "typescript", "a TypeScript example runs as TypeScript");
    assert.deepEqual(JSON.parse(await result.textContent()), { total: 12, items: 2 });
    await picker.selectOption("generics.ts");
    await runAndCaptureRequest(page, () => runButton.click());
    assert.deepEqual(JSON.parse(await result.textContent()), { top: "blue", size: 3 });

    await picker.selectOption("simple.js");
    assert.equal(await javascript.isChecked(), true, "a JavaScript example switches back to JavaScript");
    assert.equal(await editor.count(), 1, "the editor is named JavaScript code again");
    assert.deepEqual(await runAndCaptureRequest(page, () => runButton.click()), { file: "simple.js" });
    await problems.check();
  });

  await step("console output is shown as the script logs it, before its result arrives", async () => {
    await fillEditor(page, 'console.log("first");\nnew Promise((resolve) => setTimeout(() => resolve("done"), 1500));');
    const posted = page.waitForRequest((request) => request.url().endsWith("/api/execute"));
    await runButton.click();
    assert.match((await posted).headers().accept, /^text\/event-stream\b/, "the page asks for a stream");
    await page.locator("#console > li", { hasText: "first" }).waitFor();
    assert.match(await status.getAttribute("class"), /status-running/, "the first line is shown while the script still runs");
    assert.equal(await result.textContent(), "Waiting for the result…", "the last run's result is not shown as this one's");
    await page.locator("#status:not(.status-running)").waitFor();
    assert.equal(JSON.parse(await result.textContent()), "done");
    assert.deepEqual((await consoleEntries(page)).map((entry) => entry.values), [["first"]]);

    await picker.selectOption("progress.js");
    await runButton.click();
    await page.locator("#console > li", { hasText: "step 1 of 8" }).waitFor();
    assert.match(await status.getAttribute("class"), /status-running/, "progress shows while the example runs");
    const shownWhileRunning = await page.locator("#console > li").count();
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-live-console.png") });
    assert.ok(shownWhileRunning < 8, `${shownWhileRunning} steps shown before the end`);
    await page.locator("#status:not(.status-running)").waitFor();
    assert.equal(JSON.parse(await result.textContent()).steps, 8);
    assert.equal(await page.locator("#console > li").count(), 8);
    assert.equal(await page.locator("#console-count").textContent(), "8");
    await problems.check();
  });

  await step("the input box's JSON reaches the script as `input`, invalid JSON is refused, and share links keep it", async () => {
    const inputField = page.getByLabel("Input, as JSON");
    await page.locator("#input-box > summary").click();
    await fillEditor(page, "input.items.reduce((sum, item) => sum + item.price * item.qty, 0)");
    await inputField.fill('{"items": [{"price": 3, "qty": 2}, {"price": 0.5, "qty": 4}]}');
    const body = await runAndCaptureRequest(page, () => runButton.click());
    assert.deepEqual(body.input, { items: [{ price: 3, qty: 2 }, { price: 0.5, qty: 4 }] });
    assert.equal(JSON.parse(await result.textContent()), 8);

    await inputField.fill("{not json");
    let posted = false;
    const watch = (request) => { if (request.url().endsWith("/api/execute")) posted = true; };
    page.on("request", watch);
    await runButton.click();
    await status.locator(".status-text", { hasText: "The input is not valid JSON" }).waitFor();
    page.off("request", watch);
    assert.equal(posted, false, "nothing is sent with invalid input");
    assert.equal(await inputField.getAttribute("aria-invalid"), "true");

    const typed = '{"name": "shared"}';
    await inputField.fill(typed);
    await fillEditor(page, "`hello, ${input.name}`");
    await page.getByRole("button", { name: "Share" }).click();
    await page.locator("#share-status", { hasText: "Link copied to the clipboard" }).waitFor();
    const link = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(decodeShareLink(link).input, typed, "the link holds the input as typed");
    const opened = await context.newPage();
    await opened.goto(link);
    await opened.locator("#run:enabled").waitFor();
    assert.equal(await opened.getByLabel("Input, as JSON").inputValue(), typed, "the input is restored");
    await runAndCaptureRequest(opened, () => opened.getByRole("button", { name: "Run" }).click());
    assert.equal(JSON.parse(await opened.locator("#result").textContent()), "hello, shared");
    await opened.close();
    await inputField.fill("");
    await problems.check();
  });

  await step("batch mode runs the code once per item of a JSON array and shows the results as a table, in order", async () => {
    const batchSwitch = page.getByLabel("Batch: run once for each item of a JSON array");
    const batchBlock = page.locator("#batch-block");
    if (!(await page.locator("#input-box").evaluate((box) => box.open))) await page.locator("#input-box > summary").click();
    // The switch is a checkbox: Space toggles it from the keyboard.
    await batchSwitch.focus();
    await page.keyboard.press("Space");
    assert.equal(await batchSwitch.isChecked(), true);
    const inputsField = page.getByLabel("Inputs, as a JSON array");
    await fillEditor(page, "input * 2");
    await inputsField.fill("[1, 2, 3]");
    const posted = page.waitForRequest((request) => request.url().endsWith("/api/batch") && request.method() === "POST");
    await runButton.click();
    const body = (await posted).postDataJSON();
    assert.equal(body.code, "input * 2");
    assert.deepEqual(body.inputs, [1, 2, 3]);
    assert.equal(body.input, undefined, "a batch sends inputs, not input");
    await page.locator("#status:not(.status-running)").waitFor();
    await batchBlock.waitFor();
    assert.deepEqual(
      (await batchRows(page)).map(({ index, input, outcome, result }) => [index, input, outcome, result]),
      [["0", "1", "Success", "2"], ["1", "2", "Success", "4"], ["2", "3", "Success", "6"]],
    );
    assert.match(await status.getAttribute("class"), /status-success/);
    assert.equal(await page.locator("#batch-count").textContent(), "3");
    assert.equal(await result.isVisible(), false, "the single run's result is not shown beside a batch's");

    await fillEditor(page, 'if (input === 2) throw new TypeError("two is refused");\nconsole.log("item", input);\ninput * 2');
    await runAndCaptureBatch(page, () => page.keyboard.press("Control+Enter"));
    const rows = await batchRows(page);
    assert.deepEqual(
      rows.map(({ outcome, kind, result, console }) => [outcome, kind, result, console]),
      [
        ["Success", "", "2", "1 entry"],
        ["Uncaught exception", "exception", "TypeError: two is refused", "—"],
        ["Success", "", "6", "1 entry"],
      ],
    );
    assert.deepEqual(rows.map((row) => row.status), ["success", "error", "success"]);
    assert.match(await status.getAttribute("class"), /status-error/);
    await status.locator(".status-text", { hasText: "1 of 3 items ended in an error" }).waitFor();
    // A row's console entries unfold from the keyboard.
    const firstLog = page.locator("#batch-table tbody tr").first().locator("summary");
    await firstLog.focus();
    await page.keyboard.press("Enter");
    assert.deepEqual(
      await page.locator("#batch-table tbody tr").first().locator(".entry .value").allTextContents(),
      ["item", "1"],
    );
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-batch.png") });

    let posts = 0;
    const watch = (request) => { if (/\/api\/(batch|execute)$/.test(request.url())) posts += 1; };
    page.on("request", watch);
    for (const [typed, message] of [
      ["[1, 2", "The inputs are not valid JSON"],
      ['{"x": 1}', "A batch's inputs must be a JSON array"],
      ["[]", "at least one item"],
      ["", "A batch needs its inputs"],
    ]) {
      await inputsField.fill(typed);
      await runButton.click();
      await status.locator(".status-text", { hasText: message }).waitFor();
      assert.equal(await inputsField.getAttribute("aria-invalid"), "true", typed);
      assert.equal(await focusedElement(page), "input-json", typed);
    }
    page.off("request", watch);
    assert.equal(posts, 0, "nothing is sent when the inputs are not a non-empty JSON array");

    await inputsField.fill('[{"n": 1}, {"n": 2}]');
    await fillEditor(page, "input.n + 1");
    await page.getByRole("button", { name: "Copy as curl" }).click();
    await page.locator("#share-status", { hasText: "curl command copied" }).waitFor();
    const command = await page.evaluate(() => navigator.clipboard.readText());
    assert.ok(command.startsWith(`curl -s ${new URL("/api/batch", BASE_URL).href} `), command);
    const answer = JSON.parse(await runInShell(command));
    assert.deepEqual(answer.results.map((item) => item.result), [2, 3]);

    await batchSwitch.uncheck();
    assert.equal(await page.getByLabel("Input, as JSON").count(), 1, "the box asks for one input again");
    await page.getByLabel("Input, as JSON").fill("");
    await fillEditor(page, "40 + 2");
    await runAndCaptureRequest(page, () => runButton.click());
    assert.equal(JSON.parse(await result.textContent()), 42);
    assert.equal(await batchBlock.isVisible(), false, "a single run hides the batch's table");
    await problems.check();
  });

  const keepState = page.getByRole("switch", { name: "Keep state between runs" });
  const sessionStatus = page.locator("#session-status");

  await step("Keep state runs each Run in one session: x = 1 then x + 1 is 2, its expiry is shown, switching off ends it", async () => {
    assert.equal(await keepState.isChecked(), false, "the switch starts off");
    await page.getByLabel("Memory").fill("48");
    // The switch is a checkbox: Space toggles it from the keyboard, and turning it on starts a session.
    const created = page.waitForResponse((response) => response.url().endsWith("/api/sessions") && response.request().method() === "POST");
    await keepState.focus();
    await page.keyboard.press("Space");
    const creation = await created;
    assert.equal(creation.status(), 201);
    assert.deepEqual(creation.request().postDataJSON(), { memoryLimitMb: 48 }, "the memory limit is the session's");
    const session = await creation.json();
    await sessionStatus.locator(`time[datetime="${session.expiresAt}"]`).waitFor();
    assert.equal(await sessionStatus.getAttribute("data-state"), "open");
    assert.equal(await page.getByLabel("Memory").evaluate((input) => input.readOnly), true, "the session's memory limit is fixed");
    assert.match(await page.getByLabel("Memory").getAttribute("aria-describedby"), /session-memory-hint/, "and the field says why");
    assert.equal(await page.getByLabel("Batch: run once for each item of a JSON array").isDisabled(), true, "no batches in a session");

    const executePath = `/api/sessions/${session.id}/execute`;
    const runInSession = async (code) => {
      await fillEditor(page, code);
      const posted = page.waitForRequest((request) => request.url().endsWith(executePath) && request.method() === "POST");
      const reread = page.waitForResponse((response) => response.url().endsWith(`/api/sessions/${session.id}`) && response.request().method() === "GET");
      await runButton.click();
      const body = (await posted).postDataJSON();
      const state = await (await reread).json();
      await page.locator("#status:not(.status-running)").waitFor();
      return { body, state };
    };
    const first = await runInSession("x = 1");
    assert.deepEqual(first.body, { code: "x = 1" }, "the body a Run sends, without the session's memory limit");
    assert.equal(JSON.parse(await result.textContent()), 1);
    const second = await runInSession("x + 1");
    assert.match(await status.getAttribute("class"), /status-success/);
    assert.equal(JSON.parse(await result.textContent()), 2, "the second run sees what the first defined");
    assert.equal(second.state.executions, 2);
    await sessionStatus.locator(`time[datetime="${second.state.expiresAt}"]`).waitFor();
    assert.ok(second.state.expiresAt >= session.expiresAt, "each run pushes the expiry back (or keeps it)");
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-session.png") });

    await page.getByRole("button", { name: "Copy as curl" }).click();
    await page.locator("#share-status", { hasText: "curl command copied" }).waitFor();
    const command = await page.evaluate(() => navigator.clipboard.readText());
    assert.ok(command.startsWith(`curl -s ${new URL(executePath, BASE_URL).href} `), command);
    assert.equal(JSON.parse(await runInShell(command)).result, 2, "the copied command runs in the same session");

    const deleted = page.waitForResponse((response) => response.url().endsWith(`/api/sessions/${session.id}`) && response.request().method() === "DELETE");
    await keepState.press("Space");
    assert.equal((await deleted).status(), 204, "switching off ends the session");
    const after = await fetch(new URL(`/api/sessions/${session.id}`, BASE_URL));
    assert.equal(after.status, 404);
    assert.equal((await after.json()).error.kind, "session_not_found");
    assert.equal(await sessionStatus.getAttribute("data-state"), "off");
    assert.equal(await page.getByLabel("Memory").evaluate((input) => input.readOnly), false);

    const fresh = await runAndCaptureRequest(page, async () => {
      await fillEditor(page, "typeof x");
      await runButton.click();
    });
    assert.equal(fresh.memoryLimitMb, 48, "off again, a run sends its own memory limit to /api/execute");
    assert.equal(JSON.parse(await result.textContent()), "undefined", "off again, a run starts from nothing");
    await problems.check();
  });

  await step("a session that is gone (lost with its run, or ended elsewhere) is said to be gone, and the next Run starts a new one", async () => {
    await page.getByLabel("Memory").fill("16");
    const created = page.waitForResponse((response) => response.url().endsWith("/api/sessions") && response.request().method() === "POST");
    await keepState.check();
    const doomed = await (await created).json();
    await sessionStatus.locator(`time[datetime="${doomed.expiresAt}"]`).waitFor();

    // Running out of memory ends a session: the answer's error says session_lost.
    await fillEditor(page, "big = [];\nwhile (true) big.push(new Array(100000).fill(1));");
    await runButton.click();
    await page.locator("#status:not(.status-running)").waitFor();
    assert.equal(await status.getAttribute("data-kind"), "session_lost");
    assert.match(await status.locator(".status-badge").textContent(), /Session lost/);
    assert.equal(await sessionStatus.getAttribute("data-state"), "gone");
    assert.match(await sessionStatus.textContent(), /The session ended with that run.*The next Run starts a new session\./);

    const recreated = page.waitForResponse((response) => response.url().endsWith("/api/sessions") && response.request().method() === "POST");
    await fillEditor(page, "y = 5");
    await runButton.click();
    const replacement = await (await recreated).json();
    assert.notEqual(replacement.id, doomed.id, "the next Run started a new session");
    await page.locator("#status:not(.status-running)").waitFor();
    assert.equal(JSON.parse(await result.textContent()), 5);
    await sessionStatus.locator(`time[datetime]`).waitFor();

    // Ended behind the page's back (here by the API, as another tab or an expiry would).
    const ended = await fetch(new URL(`/api/sessions/${replacement.id}`, BASE_URL), { method: "DELETE" });
    assert.equal(ended.status, 204);
    await fillEditor(page, "y");
    await runButton.click();
    await page.locator("#status:not(.status-running)").waitFor();
    assert.match(await status.getAttribute("class"), /status-failure/);
    assert.equal(await status.getAttribute("data-kind"), "session_not_found");
    assert.match(await status.locator(".status-badge").textContent(), /Session gone · HTTP 404/);
    assert.equal(await sessionStatus.getAttribute("data-state"), "gone");
    assert.match(await sessionStatus.textContent(), /no longer has this session.*The next Run starts a new session\./);
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-session-gone.png") });

    const again = page.waitForResponse((response) => response.url().endsWith("/api/sessions") && response.request().method() === "POST");
    await fillEditor(page, "typeof y");
    await runButton.click();
    assert.equal((await again).status(), 201);
    await page.locator("#status:not(.status-running)").waitFor();
    assert.equal(JSON.parse(await result.textContent()), "undefined", "a new session starts from nothing");

    // Batch mode cannot be turned on while a session is open; turned off, the switch is free again.
    await keepState.uncheck();
    await page.getByLabel("Memory").fill("");
    const batchSwitch = page.getByLabel("Batch: run once for each item of a JSON array");
    if (!(await page.locator("#input-box").evaluate((box) => box.open))) await page.locator("#input-box > summary").click();
    await batchSwitch.check();
    assert.equal(await keepState.isDisabled(), true, "Keep state is off and disabled in batch mode");
    await batchSwitch.uncheck();
    assert.equal(await keepState.isDisabled(), false);
    // Chromium itself logs every 4xx answer to the console; the session's 404 is expected here.
    await problems.check((entry) => /\b404\b|Not Found/i.test(entry));
    problems.console.length = 0;
    problems.failedRequests.length = 0;
  });

  await step("leaving the page with Keep state on ends its session", async () => {
    const other = await openPage(browser, { viewport: DESKTOP });
    await other.page.locator("#run:enabled").waitFor();
    const created = other.page.waitForResponse((response) => response.url().endsWith("/api/sessions") && response.request().method() === "POST");
    await other.page.getByRole("switch", { name: "Keep state between runs" }).check();
    const session = await (await created).json();
    await other.page.locator(`#session-status time[datetime="${session.expiresAt}"]`).waitFor();
    await other.page.goto("about:blank");
    // The DELETE is sent with keepalive as the page goes; wait for its effect, within a deadline.
    const deadline = Date.now() + 30_000;
    let answer;
    for (;;) {
      answer = await fetch(new URL(`/api/sessions/${session.id}`, BASE_URL));
      if (answer.status === 404 || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(answer.status, 404, "the session was ended when its page went away");
    await other.context.close();
  });

  await step("a wrong API key gets a clear 401 message; the key stays in this tab only", async () => {
    const key = "not-a-real-key";
    await keyField.fill(key);
    await fillEditor(page, "1 + 1");
    const posted = page.waitForRequest((request) => request.url().endsWith("/api/execute"));
    await runAndCaptureRequest(page, () => runButton.click());
    assert.equal((await posted).headers().authorization, `Bearer ${key}`, "the key is sent as a bearer token");
    assert.match(await status.getAttribute("class"), /status-failure/);
    assert.match(await status.locator(".status-badge").textContent(), /API key not accepted · HTTP 401/);
    assert.match(await status.locator(".status-text").textContent(), /does not know this API key/);

    const storage = await page.evaluate(() => ({
      session: sessionStorage.getItem("jsbox.apiKey"),
      local: Object.values({ ...localStorage }).join("\n"),
    }));
    assert.equal(storage.session, key, "the key is in sessionStorage");
    assert.ok(!storage.local.includes(key), "the key is not in localStorage");

    await page.getByRole("button", { name: "Share" }).click();
    await page.locator("#share-status", { hasText: "Link copied" }).waitFor();
    const link = await sharedText.inputValue();
    assert.ok(!link.includes(key) && !JSON.stringify(decodeShareLink(link)).includes(key), "the key is not in the link");

    await page.getByRole("button", { name: "Copy as curl" }).click();
    await page.locator("#share-status", { hasText: "$JSBOX_API_KEY" }).waitFor();
    const command = await sharedText.inputValue();
    assert.ok(!command.includes(key), "the command does not hold the key");
    assert.match(command, / -H "Authorization: Bearer \$JSBOX_API_KEY" /);
    const refused = JSON.parse(await runInShell(command, { JSBOX_API_KEY: key }));
    assert.equal(refused.error.kind, "unauthorized", "the command sends the key from $JSBOX_API_KEY");

    await page.reload();
    await page.locator("#run:enabled").waitFor();
    assert.equal(await keyField.inputValue(), key, "the key survives a reload of the tab");
    const otherTab = await context.newPage();
    await otherTab.goto("/");
    await otherTab.locator("#run:enabled").waitFor();
    assert.equal(await otherTab.getByLabel("API key").inputValue(), "", "another tab does not get the key");
    await otherTab.close();

    assert.equal(await picker.textContent(), "Examples unavailable", "the wrong key cannot list the examples");
    await keyField.fill("");
    await keyField.blur();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("jsbox.apiKey")), null, "clearing the field forgets the key");
    await page.locator("#example:enabled").waitFor();
    // Chromium itself logs every 4xx answer to the console; the 401s are expected here.
    await problems.check((entry) => /\b401\b|Unauthorized/i.test(entry));
    problems.console.length = 0;
    problems.failedRequests.length = 0;
  });

  await step("an endless loop is stopped at timeoutMs, the timeout is shown, and Run fires once", async () => {
    await fillEditor(page, "let spins = 0;\nwhile (true) {\n  spins++;\n}");
    await page.getByLabel("Timeout").fill("300");
    const posts = [];
    const countPost = (request) => {
      if (request.url().endsWith("/api/execute")) posts.push(request);
    };
    page.on("request", countPost);
    const body = await runAndCaptureRequest(page, async () => {
      await runButton.click();
      await page.waitForFunction(() => document.getElementById("run").getAttribute("aria-busy") === "true");
      // force: Playwright would otherwise wait for the aria-disabled button to be enabled again.
      await runButton.click({ force: true });
      await page.keyboard.press("Control+Enter");
    });
    page.off("request", countPost);

    assert.equal(posts.length, 1, "clicking again while running sends nothing");
    assert.equal(body.timeoutMs, 300);
    assert.match(await status.getAttribute("class"), /status-error/);
    assert.equal(await status.getAttribute("data-kind"), "timeout");
    assert.match(await status.locator(".status-badge").textContent(), /Timed out/);
    assert.equal(await runButton.getAttribute("aria-busy"), "false", "the button is ready again");
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-timeout.png") });
    await problems.check();
  });

  await step("a script larger than the server accepts shows a readable 413 message", async () => {
    await page.getByLabel("Timeout").fill("");
    await fillEditor(page, `// ${"x".repeat(MAX_BODY_BYTES)}\n1;`);
    await runAndCaptureRequest(page, () => runButton.click());
    assert.match(await status.getAttribute("class"), /status-failure/);
    assert.match(await status.locator(".status-badge").textContent(), /Script too large · HTTP 413/);
    // Chromium itself logs every 4xx answer to the console; that one is expected here.
    await problems.check((entry) => /\b413\b|Payload Too Large/i.test(entry));
  });

  await step("phone width, light and dark: everything fits, the editor and its search panel work", async () => {
    for (const colorScheme of ["light", "dark"]) {
      const phone = await openPage(browser, { viewport: PHONE, isMobile: true, hasTouch: true, colorScheme });
      await phone.page.locator("#example:enabled").waitFor();
      await phone.page.getByLabel("Example").selectOption("log.js");
      // At the start of the first line: the middle of a wide line would scroll the editor sideways.
      await phone.page.locator("#editor .cm-line").first().tap({ position: { x: 4, y: 4 } });
      assert.equal(await focusedElement(phone.page), "editor text", "a tap puts the caret in the editor");
      await phone.page.keyboard.press("Control+f");
      await phone.page.getByRole("textbox", { name: "Find" }).pressSequentially("console");
      await runAndCaptureRequest(phone.page, () => phone.page.getByRole("button", { name: "Run" }).tap());
      await phone.page.getByRole("button", { name: "Share" }).tap();
      await phone.page.locator("#shared-text").waitFor();
      assert.match(await phone.page.locator("#shared-text").inputValue(), /#run=/);
      const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone's screen`);
      assert.equal(
        await phone.page.locator("#editor .tok-keyword").first().evaluate((token) => getComputedStyle(token).color),
        await customColour(phone.page, "--syntax-keyword"),
        `keywords take the ${colorScheme} syntax colour`,
      );
      await phone.page.screenshot({ path: path.join(ARTIFACTS_DIR, `demo-phone-${colorScheme}.png`), fullPage: true });
      await phone.problems.check();
      await phone.context.close();
    }
  });

  await step("desktop, dark: the editor takes the dark colours, and the page has no errors", async () => {
    const dark = await openPage(browser, { viewport: DESKTOP, colorScheme: "dark" });
    await dark.page.locator("#example:enabled").waitFor();
    await dark.page.getByLabel("Example").selectOption("error.js");
    await runAndCaptureRequest(dark.page, () => dark.page.getByRole("button", { name: "Run" }).click());
    const editorBackground = await dark.page.locator("#editor .cm-editor").evaluate((view) => getComputedStyle(view).backgroundColor);
    assert.equal(editorBackground, await customColour(dark.page, "--surface-sunken"));
    assert.notEqual(await customColour(dark.page, "--syntax-keyword"), await customColour(page, "--syntax-keyword"));
    await dark.page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-desktop-dark.png"), fullPage: true });
    await dark.problems.check();
    await dark.context.close();
  });

  await step("the API reference renders every operation, status and schema of the OpenAPI document", async () => {
    const openapi = await (await page.request.get("/api/openapi.json")).json();
    await page.getByRole("link", { name: "API reference" }).click();
    await page.waitForURL(/reference\.html$/);
    for (const size of [DESKTOP, PHONE]) {
      const reference = await openPage(browser, { viewport: size }, "/reference.html");
      const body = reference.page.locator("#reference[aria-busy=false]");
      await body.waitFor();
      for (const [route, item] of Object.entries(openapi.paths)) {
        for (const [method, operation] of Object.entries(item)) {
          const section = reference.page.locator(`#op-${operation.operationId}`);
          assert.equal(await section.locator("h2").textContent(), `${method.toUpperCase()} ${route}`);
          const statuses = await section.locator(".responses tr").evaluateAll((rows) => rows.map((row) => row.dataset.status));
          assert.deepEqual(statuses, Object.keys(operation.responses), `every status of ${route}`);
        }
      }
      const schemas = await reference.page.locator(".schema").evaluateAll((sections) => sections.map((section) => section.id));
      assert.deepEqual(schemas, Object.keys(openapi.components.schemas).map((name) => `schema-${name}`));
      const timeout = reference.page.locator("#schema-ExecuteRequest tr", { hasText: "timeoutMs" });
      assert.match(await timeout.textContent(), new RegExp(`≤ ${openapi.components.schemas.ExecuteRequest.allOf[0].properties.timeoutMs.maximum}`));
      const overflow = await reference.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the reference is ${overflow}px wider than the ${size.width}px screen`);
      await reference.page.screenshot({ path: path.join(ARTIFACTS_DIR, `reference-${size.width}.png`) });
      await reference.problems.check();
      await reference.context.close();
    }
  });

  console.log(`screenshots in ${ARTIFACTS_DIR}`);
} finally {
  await browser.close();
}
