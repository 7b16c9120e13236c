// crypto.randomUUID and crypto.getRandomValues, from the operating system's CSPRNG: no two
// executions can predict each other's values.
const uuid = crypto.randomUUID();
const dice = crypto.getRandomValues(new Uint8Array(5)).map((byte) => (byte % 6) + 1);

let tooMany;
try {
  crypto.getRandomValues(new Uint8Array(65537));
} catch (error) {
  tooMany = error.name;
}

console.log("a version 4 UUID:", /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid));
({ uuid, dice: Array.from(dice), tooMany });
