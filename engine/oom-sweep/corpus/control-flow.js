// Control flow the bytecode emitter treats specially: labels, switch with fall-through,
// try/catch/finally with returns and breaks inside, with, sloppy-mode arguments, getters in
// loops, comma and conditional chains, optional chaining and nullish assignment.
function labelled(matrix) {
  let found = null;
  outer: for (let i = 0; i < matrix.length; i++) {
    inner: for (let j = 0; j < matrix[i].length; j++) {
      if (matrix[i][j] < 0) continue outer;
      if (matrix[i][j] === 0) { found = [i, j]; break outer; }
      if (j > 10) break inner;
    }
  }
  return found;
}
function classify(value) {
  switch (typeof value) {
    case "number": if (Number.isNaN(value)) return "nan";
    case "bigint": return "numeric";
    case "string": { const trimmed = value.trim(); return trimmed ? "text" : "blank"; }
    default: return "other";
  }
}
function finallyWins() { try { return "try"; } finally { for (;;) { break; } } }
function nestedTry() {
  const log = [];
  for (const step of [1, 2, 3]) {
    try { try { if (step === 2) throw new Error("two"); log.push(step); } finally { log.push(`f${step}`); } }
    catch (error) { log.push(error.message); continue; }
    finally { log.push("outer"); }
  }
  return log;
}
function sloppy(a, b) { arguments[0] = 10; with ({ a: 1, c: 3 }) { b = a + c; } return [a, b, arguments.length]; }
let config = { server: { port: 0 }, list: null };
config.server.host ??= "localhost";
config.list ||= [];
config.server.port &&= 8080;
const optional = [config?.server?.host, config.missing?.deep.deeper, config.list?.[0]?.(), config.server.port?.toString()];
let counter = 0;
const comma = (counter++, counter++, counter);
const ternary = counter > 1 ? (counter > 2 ? "many" : "two") : "few";
do { counter--; } while (counter > 0);
let i = 0;
while (true) { if (++i > 5) break; }
[labelled([[1, -1], [2, 0], [3]]), [1, NaN, 2n, " ", "x", {}].map(classify), finallyWins(), nestedTry(), sloppy(1, 2), config, optional, comma, ternary, i];
