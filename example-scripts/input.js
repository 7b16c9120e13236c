// The request's "input" (any JSON) is the global `input`, frozen: read it, do not change it.
// Run it with {"file": "input.js", "input": {"items": [{"name": "tea", "price": 3, "qty": 2}]}}
// (or the demo page's Input box); without one it uses a sample order.
const order = input ?? { items: [{ name: "tea", price: 3, qty: 2 }, { name: "cake", price: 4.5, qty: 1 }] };

const lines = order.items.map(({ name, price, qty }) => ({ name, total: price * qty }));
console.table(lines);
console.log("input is frozen:", input === undefined || Object.isFrozen(input));

({ total: lines.reduce((sum, line) => sum + line.total, 0), items: lines.length });
