// Generators and iterators: yield, yield*, return and throw into them, infinite sequences taken
// lazily, and iterator protocols written by hand.
function* naturals() { let n = 0; for (;;) yield n++; }
function* take(iterable, count) { for (const value of iterable) { if (count-- <= 0) return; yield value; } }
function* map(iterable, f) { for (const value of iterable) yield f(value); }
function* flatten(values) { for (const value of values) { if (Array.isArray(value)) yield* flatten(value); else yield value; } }
function* conversation() {
  try {
    const name = yield "name?";
    const age = yield `hello ${name}, age?`;
    return `${name} is ${age}`;
  } finally {
    yield "cleanup";
  }
}
const talk = conversation();
const log = [talk.next().value, talk.next("ada").value, talk.next(36).value, talk.next().value];
const thrower = conversation();
thrower.next();
let caught;
try { thrower.throw(new Error("stop")); thrower.next(); } catch (error) { caught = error.message; }
const range = { from: 1, to: 5, [Symbol.iterator]() { let current = this.from; const to = this.to; return { next: () => (current <= to ? { value: current++, done: false } : { value: undefined, done: true }), [Symbol.iterator]() { return this; } }; } };
class Tree {
  constructor(value, children = []) { this.value = value; this.children = children; }
  *[Symbol.iterator]() { yield this.value; for (const child of this.children) yield* child; }
}
const tree = new Tree(1, [new Tree(2, [new Tree(3)]), new Tree(4)]);
const squares = [...take(map(naturals(), (n) => n * n), 10)];
const [first, second, ...others] = flatten([1, [2, [3, [4, [5]]]], 6]);
[squares, first, second, others, log, caught, [...range], [...tree], Array.from(take(naturals(), 3))];
