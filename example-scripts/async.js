// A Promise as the last value is awaited; timers run inside the execution's deadline.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  console.log("waiting…");
  const started = Date.now();
  await sleep(50);
  const results = await Promise.all([1, 2, 3].map(async (n) => n * n));
  console.log("slept for at least", Date.now() - started >= 50 ? "50 ms" : "less than 50 ms");
  return { squares: results };
}

main();
