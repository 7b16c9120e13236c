// Builtins with allocation inside: string building, number formatting, JSON, arrays grown one by
// one, Map and Set, typed arrays, BigInt arithmetic and dates.
const parts = [];
for (let i = 0; i < 200; i++) parts.push(`item-${i}`.padStart(12, "*"));
const joined = parts.join("|");
const json = JSON.parse(JSON.stringify({ parts: parts.slice(0, 50), nested: { deep: [1, { a: [2, { b: 3 }] }] } }, null, 2));
const map = new Map(parts.map((part, index) => [part, index]));
const set = new Set(joined.split("").filter((c) => c !== "*"));
const typed = Float64Array.from({ length: 256 }, (_, i) => Math.sin(i));
const bytes = new Uint8Array(typed.buffer).subarray(0, 64).reverse();
let big = 1n;
for (let i = 1n; i <= 50n; i++) big *= i;
const formatted = [Math.PI.toFixed(10), (1234.5678).toExponential(3), (255).toString(2), (0.1 + 0.2).toPrecision(17), Number.parseFloat("1e-7")];
const sorted = parts.slice().sort((a, b) => b.localeCompare(a)).slice(0, 3);
const date = new Date(Date.UTC(2024, 1, 29, 12, 30)).toISOString();
const weak = new WeakMap([[json, "json"]]);
const symbols = Object.getOwnPropertySymbols({ [Symbol.iterator]: 1, [Symbol("x")]: 2 }).length;
const proxy = new Proxy({}, { get: (_, key) => `proxied ${String(key)}` });
[joined.length, json.nested.deep[1].a[1].b, map.size, set.size, bytes.length, big.toString().length, formatted, sorted, date, weak.has(json), symbols, proxy.anything, Reflect.ownKeys(globalThis).length > 0];
