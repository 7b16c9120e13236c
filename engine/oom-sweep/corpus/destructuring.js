// Destructuring in every position: declarations, assignments, parameters, loops, defaults, rest,
// computed keys and nesting (js_parse_destructuring_element's paths).
const { a, b: { c = 1, d: [e, , f = 2, ...g] = [] } = {}, ...rest } = { a: 1, b: { d: [3, 4, 5, 6, 7] }, x: 8, y: 9 };
let [h, [i, { j = 10 } = {}] = [], ...k] = [1, [2, { j: 3 }], 4, 5];
var p, q, r;
({ p, q = 5, ...r } = { p: 1, s: 2, t: 3 });
[p, q] = [q, p];
const key = "dynamic";
const { [key]: computed = "none", [`${key}2`]: computed2 = "none2" } = { dynamic: "yes" };
function params({ x = 1, y: [z = 2, ...w] = [] } = {}, [m, n = m * 2] = [1], ...others) {
  return x + z + w.length + m + n + others.length;
}
const arrow = ({ u, v } = {}, [t] = [0]) => (u ?? 0) + (v ?? 0) + t;
for (const [index, { value = 0, nested: { deep = "d" } = {} }] of [[0, { value: 1 }], [1, { nested: { deep: "e" } }]].entries()) {
  p = index + value + deep.length;
}
for (const { length, 0: first } of ["abc", "de"]) q = length + first.length;
for (let { id, tags: [tag = "none"] = [] } of [{ id: 1, tags: ["x"] }, { id: 2 }]) r = id + tag;
try { throw { code: 1, detail: { reason: "r" } }; } catch ({ code, detail: { reason } }) { p = code + reason; }
const swap = ([x1, y1]) => [y1, x1];
const deep = ({ l1: { l2: { l3: { l4: [{ l5 = "bottom" } = {}] = [] } = {} } = {} } = {} }) => l5;
const object = { get [key]() { return 1; }, ...rest, a, c, e, f, g, h, i, j, k };
[params({ x: 2, y: [3, 4, 5] }, [6], 7, 8), arrow({ u: 1 }), swap([1, 2]), deep({}), computed, computed2, object];
