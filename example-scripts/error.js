// A thrown error makes the execution fail; console output before it is still returned.
function parseAge(text) {
  const age = Number(text);
  if (!Number.isInteger(age) || age < 0) {
    throw new RangeError(`not an age: ${JSON.stringify(text)}`);
  }
  return age;
}

console.log("parsing 42 ->", parseAge("42"));
parseAge("forty-two");
