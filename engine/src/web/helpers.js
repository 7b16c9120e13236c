// Helpers every group of Web APIs shares (each group has its own copy).
const classOf = native.classOf;
// QuickJS's class ids of the kinds of object the Web APIs tell apart, learnt from samples the
// first time they are needed.
let classIds = null;
const classes = () => {
  if (classIds === null) {
    classIds = {
      __proto__: null,
      object: classOf({}),
      array: classOf([]),
      error: classOf(new Error_()),
      boolean: classOf(Object_(false)),
      number: classOf(Object_(0)),
      bigint: classOf(Object_(0n)),
      string: classOf(Object_('')),
      symbol: classOf(Object_(SymbolIterator)),
      date: classOf(new Date_(0)),
      regexp: classOf(/a/),
      map: classOf(new Map_()),
      set: classOf(new Set_()),
      arrayBuffer: classOf(new ArrayBuffer_(0)),
      sharedArrayBuffer: classOf(new SharedArrayBuffer_(0)),
      dataView: classOf(new DataView_(new ArrayBuffer_(0))),
      arguments: classOf(arguments),
    };
  }
  return classIds;
};

// A WebIDL dictionary argument: undefined and null are empty, other primitives are refused.
const dictionary = (value, what) => {
  if (value === undefined || value === null) return {__proto__: null};
  if (typeof value !== 'object' && typeof value !== 'function') {
    throw new TypeError_(`${what} is not an object.`);
  }
  return value;
};

// WebIDL's USVString: a string with unpaired surrogates replaced by U+FFFD.
const toUSVString = (value) => StringPrototypeToWellFormed(`${value}`);

// The bytes a BufferSource views, as the buffer, offset and length the Rust half reads.
const viewOf = (source, what) => {
  if (TypedArrayPrototypeGetName(source) !== undefined) {
    return [
      TypedArrayPrototypeGetBuffer(source),
      TypedArrayPrototypeGetByteOffset(source),
      TypedArrayPrototypeGetByteLength(source),
    ];
  }
  const id = classOf(source);
  if (id === classes().dataView) {
    return [
      DataViewPrototypeGetBuffer(source),
      DataViewPrototypeGetByteOffset(source),
      DataViewPrototypeGetByteLength(source),
    ];
  }
  if (id === classes().arrayBuffer) return [source, 0, ArrayBufferPrototypeGetByteLength(source)];
  if (id === classes().sharedArrayBuffer) {
    return [source, 0, SharedArrayBufferPrototypeGetByteLength(source)];
  }
  throw new TypeError_(`${what} is not an ArrayBuffer or an ArrayBufferView.`);
};

