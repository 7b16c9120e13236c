// Async functions, awaits in loops and expressions, async generators, for await, promise
// combinators and rejections handled at every level.
const delay = (value) => new Promise((resolve) => setTimeout(() => resolve(value), 0));
async function sum(values) { let total = 0; for (const value of values) total += await delay(value); return total; }
async function* countdown(from) { while (from > 0) { yield await delay(from); from--; } }
async function collect() { const values = []; for await (const value of countdown(5)) values.push(value); return values; }
async function failing() { await delay(1); throw new RangeError("failed"); }
const asyncArrow = async ({ a = 1 } = {}) => (await delay(a)) + (await Promise.resolve(2));
class Service { async fetch(id) { return { id, data: await delay(`data ${id}`) }; } static async create() { return new Service(); } }
async function main() {
  const service = await Service.create();
  const results = await Promise.all([sum([1, 2, 3]), collect(), asyncArrow(), service.fetch(7)]);
  const settled = await Promise.allSettled([failing(), delay("ok")]);
  const raced = await Promise.race([delay("first"), new Promise(() => {})]);
  const any = await Promise.any([Promise.reject(new Error("no")), delay("yes")]);
  let message;
  try { await failing(); } catch (error) { message = `${error.name}: ${error.message}`; } finally { message += "!"; }
  return { results, settled: settled.map((s) => s.status), raced, any, message };
}
main();
