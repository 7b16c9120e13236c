// Closures over every kind of binding: captured loop variables, nested scopes, arguments,
// closures created in blocks, catch parameters, default parameters that see earlier ones, and
// functions hoisted out of blocks (resolve_scope_var's closure variables).
function counter(start) {
  let count = start;
  return { next: () => ++count, reset() { count = start; }, get value() { return count; } };
}
function outer(a) {
  var b = a * 2;
  function middle(c) {
    let d = c + b;
    const inner = (e) => {
      const f = () => a + b + c + d + e;
      return f;
    };
    return inner;
  }
  return middle;
}
const fns = [];
for (let i = 0; i < 5; i++) {
  let j = i * i;
  fns.push(() => i + j);
  { const k = j; fns.push(function () { return k + arguments.length; }); }
}
for (const name of ["x", "y"]) fns.push(() => name);
try { throw new Error("e"); } catch (error) { fns.push(() => error.message); }
function defaults(a, b = a + 1, c = () => a + b, d = c()) { return [a, b, c(), d]; }
function hoisting() {
  if (true) { function inBlock() { return "block"; } }
  return typeof inBlock === "function" ? inBlock() : "none";
}
const curried = (a) => (b) => (c) => (d) => (e) => a + b + c + d + e;
function recursive(n) { const again = (m) => (m <= 0 ? 0 : m + recursive(m - 1)); return again(n); }
function withArguments() { const self = () => arguments[0]; return self(); }
class Holder { #secret = 1; reveal() { return () => this.#secret; } }
const c = counter(10);
c.next(); c.next();
[c.value, outer(1)(2)(3)(), fns.map((f) => f()), defaults(1), hoisting(), curried(1)(2)(3)(4)(5), recursive(10), withArguments(7), new Holder().reveal()()];
