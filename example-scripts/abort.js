// AbortController and AbortSignal, with queueMicrotask and performance.now() (0.1 ms steps).
const controller = new AbortController();
controller.signal.addEventListener("abort", () => console.log("aborted:", controller.signal.reason));

const work = (signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve("finished"), 1000);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

const started = performance.now();
queueMicrotask(() => console.log("a microtask runs before timers"));
setTimeout(() => controller.abort("took too long"), 20);

work(controller.signal).then(
  (value) => ({ value }),
  (reason) => ({ stopped: reason, afterMs: Math.round(performance.now() - started) >= 20 }),
);
