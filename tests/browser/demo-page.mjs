// Drives the demo page in headless Chromium (Debian's /usr/bin/chromium, through playwright-core)
// against a running ingress. Started by tests/tests/browser.rs, which starts the real ingress and
// sandbox first; it can also be pointed at any running service by hand:
//
//   BASE_URL=http://127.0.0.1:8080 node tests/browser/demo-page.mjs   (screenshots: tests/artifacts/)
//
// Each step prints "ok - <step>"; the first failed assertion ends the run with exit code 1.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BASE_URL = required("BASE_URL");
const ARTIFACTS_DIR = path.resolve(process.env.ARTIFACTS_DIR ?? fileURLToPath(new URL("../artifacts", import.meta.url)));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };
/** The ingress's request body limit (its MAX_BODY_BYTES; 1 MiB unless the caller set another). */
const MAX_BODY_BYTES = Number(process.env.MAX_BODY_BYTES ?? 1024 * 1024);

// The whole run must end on its own even if the browser hangs.
setTimeout(() => {
  console.error("not ok - the browser test did not finish within 120 s");
  process.exit(1);
}, 120_000).unref();

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

const consoleEntries = (page) =>
  page.locator("#console > li").evaluateAll((items) =>
    items.map((item) => ({
      type: item.dataset.type,
      className: item.className,
      time: item.querySelector("time")?.dateTime ?? "",
      values: [...item.querySelectorAll(".entry-data > .value")].map((value) => value.textContent),
    })),
  );

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
  const { page, problems } = await openPage(browser, { viewport: DESKTOP });
  const editor = page.getByLabel("JavaScript code");
  const picker = page.getByLabel("Example");
  const runButton = page.getByRole("button", { name: "Run" });
  const status = page.locator("#status");
  const result = page.locator("#result");

  const examples = (await (await page.request.get("/api/examples")).json()).examples;

  await step("the page loads its examples into the picker without errors", async () => {
    await page.locator("#example:enabled").waitFor();
    const names = await picker.locator("option").evaluateAll((options) => options.map((o) => o.value).filter(Boolean));
    assert.deepEqual(names, examples.map((example) => example.name));
    assert.ok(names.includes("simple.js"), "simple.js is among the examples");
    await problems.check();
  });

  await step("picking an example loads its source, and running it unchanged sends its name", async () => {
    await picker.selectOption("simple.js");
    const source = examples.find((example) => example.name === "simple.js").source;
    assert.equal(await editor.inputValue(), source);
    const gutterLines = await page.locator(".gutter > div").count();
    assert.equal(gutterLines, source.split("\n").length, "one line number per line");

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

  await step("typed code runs with Ctrl+Enter and shows its result, logs and timestamps", async () => {
    await editor.fill(
      [
        'console.log("hello from the test", 21 * 2);',
        "console.warn({ careful: true });",
        '({ sum: [1, 2, 3].reduce((a, b) => a + b, 0), label: "done" });',
      ].join("\n"),
    );
    assert.match(await picker.locator("option:checked").textContent(), /\(edited\)$/, "the picked example shows as edited");
    await editor.focus();
    const body = await runAndCaptureRequest(page, () => page.keyboard.press("Control+Enter"));
    assert.equal(typeof body.code, "string", "edited code is sent as code, not as the example's name");
    assert.equal(body.file, undefined);

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
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-desktop.png"), fullPage: true });
  });

  await step("Tab indents (undoably), Enter keeps the indent, Escape then Shift+Tab leaves the editor", async () => {
    await editor.fill("x");
    await editor.press("Home");
    await editor.press("Tab");
    assert.equal(await editor.inputValue(), "  x");
    assert.equal(await page.evaluate(() => document.activeElement.id), "code", "Tab kept the focus");
    await editor.press("Control+z");
    assert.equal(await editor.inputValue(), "x", "Ctrl+Z undoes the indent");
    await editor.press("Tab");
    await editor.press("End");
    await editor.press("Enter");
    await page.keyboard.type("y");
    assert.equal(await editor.inputValue(), "  x\n  y");
    assert.equal(await page.locator(".gutter > div").count(), 2, "the gutter follows typed lines");
    await editor.press("Control+a");
    await editor.press("Shift+Tab");
    assert.equal(await editor.inputValue(), "x\ny", "Shift+Tab outdents every selected line");
    await editor.press("Escape");
    await page.keyboard.press("Shift+Tab");
    assert.equal(await page.evaluate(() => document.activeElement.id), "run", "focus moved back to the Run button");
  });

  await step("an endless loop is stopped at timeoutMs, the timeout is shown, and Run fires once", async () => {
    await editor.fill("let spins = 0;\nwhile (true) {\n  spins++;\n}");
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
    await editor.fill(`// ${"x".repeat(MAX_BODY_BYTES)}\n1;`);
    await runAndCaptureRequest(page, () => runButton.click());
    assert.match(await status.getAttribute("class"), /status-failure/);
    assert.match(await status.locator(".status-badge").textContent(), /Script too large · HTTP 413/);
    // Chromium itself logs every 4xx answer to the console; that one is expected here.
    await problems.check((entry) => /\b413\b|Payload Too Large/i.test(entry));
  });

  await step("phone width: no sideways scrolling, and light and dark screenshots", async () => {
    for (const colorScheme of ["light", "dark"]) {
      const phone = await openPage(browser, { viewport: PHONE, isMobile: true, hasTouch: true, colorScheme });
      await phone.page.locator("#example:enabled").waitFor();
      await phone.page.getByLabel("Example").selectOption("log.js");
      await runAndCaptureRequest(phone.page, () => phone.page.getByRole("button", { name: "Run" }).click());
      const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone's screen`);
      await phone.page.screenshot({ path: path.join(ARTIFACTS_DIR, `demo-phone-${colorScheme}.png`), fullPage: true });
      await phone.problems.check();
      await phone.context.close();
    }
    const dark = await openPage(browser, { viewport: DESKTOP, colorScheme: "dark" });
    await dark.page.locator("#example:enabled").waitFor();
    await dark.page.getByLabel("Example").selectOption("error.js");
    await runAndCaptureRequest(dark.page, () => dark.page.getByRole("button", { name: "Run" }).click());
    await dark.page.screenshot({ path: path.join(ARTIFACTS_DIR, "demo-desktop-dark.png"), fullPage: true });
    await dark.problems.check();
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
