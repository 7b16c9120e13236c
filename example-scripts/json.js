// Parse, transform and return JSON: the result comes back as JSON, not as a string.
const orders = JSON.parse(`[
  {"id": 1, "customer": "ada", "total": 12.5},
  {"id": 2, "customer": "alan", "total": 40},
  {"id": 3, "customer": "ada", "total": 7.25}
]`);

const byCustomer = {};
for (const { customer, total } of orders) {
  byCustomer[customer] = (byCustomer[customer] ?? 0) + total;
}
console.log("customers:", Object.keys(byCustomer));
({ count: orders.length, byCustomer });
