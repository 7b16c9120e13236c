// Timers log progress for 2 s, then the result arrives. Streamed (`Accept: text/event-stream`,
// as the demo page asks), each line is shown the moment it is logged, not all at the end.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const steps = 8;

async function main() {
  const started = Date.now();
  for (let step = 1; step <= steps; step++) {
    await sleep(250);
    console.log(`step ${step} of ${steps}`, `${Math.round((step / steps) * 100)}%`);
  }
  return { steps, seconds: Math.round((Date.now() - started) / 100) / 10 };
}

main();
