// Bundles entry.js and the CodeMirror packages it names, at the versions package-lock.json pins,
// into frontend/vendor/codemirror.js: one minified ES module the ingress embeds, so the page needs
// no CDN and `cargo run` needs no Node. CI rebuilds it from the lock file and fails if the result
// differs from the committed file, so the output must depend on nothing but the locked sources:
// no timestamps, no absolute paths, a fixed target.
//
//   npm ci --prefix frontend-build && npm run build --prefix frontend-build

import { readFile, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outfile = path.join(here, "../frontend/vendor/codemirror.js");

const result = await build({
  absWorkingDir: here,
  entryPoints: ["entry.js"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  charset: "utf8",
  legalComments: "none",
  metafile: true,
  write: false,
  logLevel: "warning",
});

const bundle = result.outputFiles[0].text;
await mkdir(path.dirname(outfile), { recursive: true });
await writeFile(outfile, (await licenceHeader(result.metafile)) + bundle);
console.log(`wrote ${path.relative(process.cwd(), outfile)} (${Buffer.byteLength(bundle)} bytes of code)`);

/**
 * The packages that ended up in the bundle, with their versions, and their licences' notices:
 * the MIT licence asks for its notice in every copy.
 */
async function licenceHeader(metafile) {
  const names = new Set();
  for (const [input, { bytesInOutput }] of Object.entries(Object.values(metafile.outputs)[0].inputs)) {
    const match = /^node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match && bytesInOutput > 0) names.add(match[1]);
  }
  const packages = [];
  const notices = new Map();
  for (const name of [...names].sort()) {
    const dir = path.join(here, "node_modules", name);
    const { version, license } = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
    packages.push(`${name}@${version} (${license})`);
    const text = await readFile(path.join(dir, "LICENSE"), "utf8");
    const copyright = text.split("\n").find((line) => line.startsWith("Copyright"));
    const terms = text.slice(text.indexOf(copyright) + copyright.length).trim();
    if (!notices.has(terms)) notices.set(terms, new Set());
    notices.get(terms).add(copyright.trim());
  }
  const lines = [
    "CodeMirror 6 for the jsbox demo page, bundled by frontend-build/build.mjs from frontend-build/package-lock.json.",
    "Generated: do not edit. Rebuild with `npm ci --prefix frontend-build && npm run build --prefix frontend-build`.",
    "",
    ...packages,
  ];
  for (const [terms, copyrights] of notices) lines.push("", ...[...copyrights].sort(), "", ...terms.split("\n"));
  return `/*\n${lines.map((line) => ` * ${line}`.trimEnd()).join("\n")}\n */\n`;
}
