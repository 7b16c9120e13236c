// A module: exports of every form, top-level await, import.meta, and a dynamic import that the
// sweep's harness cannot load (the rejection path under a limit).
export const answer = 42;
export let mutable = [1, 2, 3];
export function add(a, b) { return a + b; }
export class Point { constructor(x, y) { this.x = x; this.y = y; } }
export default { answer, add };
const local = { a: 1, b: 2 };
export { local as renamed, local };
export const { a: destructuredA, ...others } = local;
const awaited = await Promise.resolve(answer + 1);
export { awaited };
export const meta = typeof import.meta;
export const dynamic = await import("./missing.js").then(() => "loaded", (error) => error.name);
mutable.push(awaited);
