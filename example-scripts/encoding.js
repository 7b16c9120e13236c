// TextEncoder and TextDecoder (UTF-8), atob and btoa, as in browsers.
const bytes = new TextEncoder().encode("héllo, wörld ✓");
console.log("UTF-8 bytes:", bytes.length, Array.from(bytes.slice(0, 6)));

const text = new TextDecoder().decode(bytes);
const base64 = btoa(String.fromCharCode(...bytes));
const back = new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));

// Invalid bytes become U+FFFD, unless the decoder is fatal.
const lenient = new TextDecoder().decode(new Uint8Array([0x61, 0xff, 0x62]));
let fatal;
try {
  new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff]));
} catch (error) {
  fatal = error.name;
}

({ text, base64, roundTrip: back === text, lenient, fatal });
