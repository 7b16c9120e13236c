// structuredClone copies Maps, Sets, Dates, typed arrays and cycles; functions cannot be cloned.
const original = {
  when: new Date(0),
  tags: new Set(["a", "b"]),
  scores: new Map([["ada", 3]]),
  bytes: new Uint8Array([1, 2, 3]),
};
original.self = original;

const copy = structuredClone(original);
copy.tags.add("c");

let functions;
try {
  structuredClone({ run() {} });
} catch (error) {
  functions = error.name;
}

({
  sameObject: copy === original,
  cycleKept: copy.self === copy,
  originalTags: [...original.tags],
  copyTags: [...copy.tags],
  date: copy.when instanceof Date,
  functions,
});
