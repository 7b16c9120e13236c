// Every console method is captured as a structured log entry with a timestamp.
console.log("Hello!", { a: 1 });
console.info("Numbers and arrays are kept as JSON:", [1, 2, 3]);
console.warn("Values JSON cannot hold are rendered readably:", undefined, NaN, 10n, Symbol("s"));
console.error(new Error("something looked wrong"));
console.debug(new Map([["key", "value"]]), new Set([1, 2]));
console.table([{ name: "ada", year: 1815 }, { name: "alan", year: 1912 }]);
"logged";
