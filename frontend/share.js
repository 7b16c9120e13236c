// Share links: a run's code, language, input (or a batch's inputs) and limits, deflate-compressed and base64url-encoded into the URL's
// fragment (`#run=...`). Browsers never send the fragment to a server, so nothing is stored
// anywhere but in the link itself; opening it restores the run. The API key is never part of it.

const PREFIX = "#run=";
/** The languages a link may name; links made before the language switch name none (JavaScript). */
const LANGUAGES = ["javascript", "typescript"];

/**
 * The page's address with `run` ({ code, language?, input?, batch?, timeoutMs?, memoryLimitMb? })
 * in its fragment; `input` is the JSON as typed (a batch's array of inputs when `batch` is true),
 * and `language` is left out for JavaScript.
 */
export async function shareLink(run, location) {
  const json = JSON.stringify(run);
  const compressed = await transform(new TextEncoder().encode(json), new CompressionStream("deflate-raw"));
  return `${location.origin}${location.pathname}${location.search}${PREFIX}${toBase64Url(compressed)}`;
}

/** Whether `hash` (such as `location.hash`) holds a shared run. */
export function isShareFragment(hash) {
  return hash.startsWith(PREFIX);
}

/**
 * The run in a share fragment. Throws a readable Error when the fragment is damaged (a link cut
 * short when copied, say) or holds something other than a run.
 */
export async function readSharedRun(hash) {
  let run;
  try {
    const bytes = fromBase64Url(hash.slice(PREFIX.length));
    const json = new TextDecoder().decode(await transform(bytes, new DecompressionStream("deflate-raw")));
    run = JSON.parse(json);
  } catch {
    throw new Error("This share link is damaged: it may have been cut short when it was copied.");
  }
  const limitOk = (value) => value === undefined || (Number.isInteger(value) && value >= 1);
  const inputOk = run?.input === undefined || typeof run.input === "string";
  const batchOk = run?.batch === undefined || typeof run.batch === "boolean";
  const language = run?.language ?? "javascript";
  const languageOk = LANGUAGES.includes(language);
  if (typeof run?.code !== "string" || !languageOk || !inputOk || !batchOk || !limitOk(run.timeoutMs) || !limitOk(run.memoryLimitMb)) {
    throw new Error("This share link does not hold a run this page can open.");
  }
  return {
    code: run.code,
    language,
    input: run.input,
    batch: run.batch ?? false,
    timeoutMs: run.timeoutMs,
    memoryLimitMb: run.memoryLimitMb,
  };
}

async function transform(bytes, stream) {
  const output = new Blob([bytes]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(output).arrayBuffer());
}

function toBase64Url(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64Url(text) {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}
