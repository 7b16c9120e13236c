// structuredClone (HTML Standard's StructuredSerializeInternal and StructuredDeserialize in one
// walk) for the kinds of value QuickJS has. Recursion is bounded by QuickJS's stack limit: a
// graph too deep to walk is a RangeError like any deep recursion. Transferring is not
// supported: a non-empty `transfer` list is a DataCloneError.
const ERROR_CONSTRUCTORS = {
  __proto__: null,
  Error: Error_, EvalError: EvalError_, RangeError: RangeError_, ReferenceError: ReferenceError_,
  SyntaxError: SyntaxError_, TypeError: TypeError_, URIError: URIError_,
};

const dataCloneError = (what) => new DOMException(`${what} could not be cloned.`, 'DataCloneError');

const defineData = (object, key, value) => {
  ObjectDefineProperty(object, key, {
    __proto__: null, value, writable: true, enumerable: true, configurable: true,
  });
};

const cloneArrayBuffer = (buffer, memory) => {
  if (ArrayBufferPrototypeGetDetached(buffer)) throw dataCloneError('A detached ArrayBuffer');
  const length = ArrayBufferPrototypeGetByteLength(buffer);
  const copy = ArrayBufferPrototypeGetResizable(buffer)
    ? new ArrayBuffer_(length, {
      __proto__: null, maxByteLength: ArrayBufferPrototypeGetMaxByteLength(buffer),
    })
    : new ArrayBuffer_(length);
  TypedArrayPrototypeSet(new Uint8Array_(copy), new Uint8Array_(buffer, 0, length));
  MapPrototypeSet(memory, buffer, copy);
  return copy;
};

const cloneValue = (value, memory) => {
  const type = typeof value;
  if (type === 'symbol') throw dataCloneError('A symbol');
  if (type === 'function') throw dataCloneError('A function');
  if (type !== 'object' || value === null) return value;
  if (MapPrototypeHas(memory, value)) return MapPrototypeGet(memory, value);

  const ids = classes();
  const id = classOf(value);
  let copy;
  if (id === ids.boolean) {
    copy = Object_(BooleanPrototypeValueOf(value));
  } else if (id === ids.number) {
    copy = Object_(NumberPrototypeValueOf(value));
  } else if (id === ids.bigint) {
    copy = Object_(BigIntPrototypeValueOf(value));
  } else if (id === ids.string) {
    copy = Object_(StringPrototypeValueOf(value));
  } else if (id === ids.date) {
    copy = new Date_(DatePrototypeGetTime(value));
  } else if (id === ids.regexp) {
    copy = new RegExp_(RegExpPrototypeGetSource(value), RegExpPrototypeGetFlags(value));
  } else if (id === ids.arrayBuffer) {
    return cloneArrayBuffer(value, memory);
  } else if (TypedArrayPrototypeGetName(value) !== undefined) {
    const buffer = TypedArrayPrototypeGetBuffer(value);
    const bufferCopy = cloneValue(buffer, memory);
    const Constructor = TYPED_ARRAYS[TypedArrayPrototypeGetName(value)];
    copy = new Constructor(
      bufferCopy, TypedArrayPrototypeGetByteOffset(value), TypedArrayPrototypeGetLength(value),
    );
  } else if (id === ids.dataView) {
    const bufferCopy = cloneValue(DataViewPrototypeGetBuffer(value), memory);
    copy = new DataView_(
      bufferCopy, DataViewPrototypeGetByteOffset(value), DataViewPrototypeGetByteLength(value),
    );
  } else if (id === ids.map) {
    copy = new Map_();
    MapPrototypeSet(memory, value, copy);
    // The entries are listed first, then cloned: cloning may run getters that change the map.
    const entries = [];
    const iterator = MapPrototypeEntries(value);
    for (let step = MapIteratorPrototypeNext(iterator); !step.done; step = MapIteratorPrototypeNext(iterator)) {
      entries[entries.length] = step.value;
    }
    for (let i = 0; i < entries.length; i++) {
      MapPrototypeSet(copy, cloneValue(entries[i][0], memory), cloneValue(entries[i][1], memory));
    }
    return copy;
  } else if (id === ids.set) {
    copy = new Set_();
    MapPrototypeSet(memory, value, copy);
    const values = [];
    const iterator = SetPrototypeValues(value);
    for (let step = SetIteratorPrototypeNext(iterator); !step.done; step = SetIteratorPrototypeNext(iterator)) {
      values[values.length] = step.value;
    }
    for (let i = 0; i < values.length; i++) SetPrototypeAdd(copy, cloneValue(values[i], memory));
    return copy;
  } else if (id === ids.error) {
    const name = value.name;
    const Constructor = (typeof name === 'string' && ERROR_CONSTRUCTORS[name]) || Error_;
    copy = new Constructor();
    MapPrototypeSet(memory, value, copy);
    const message = ObjectGetOwnPropertyDescriptor(value, 'message');
    if (message !== undefined && ObjectHasOwn(message, 'value')) {
      ObjectDefineProperty(copy, 'message', {
        __proto__: null, value: `${message.value}`, writable: true, configurable: true,
      });
    }
    const stack = ObjectGetOwnPropertyDescriptor(value, 'stack');
    if (stack !== undefined && ObjectHasOwn(stack, 'value') && typeof stack.value === 'string') {
      ObjectDefineProperty(copy, 'stack', {
        __proto__: null, value: stack.value, writable: true, configurable: true,
      });
    }
    const cause = ObjectGetOwnPropertyDescriptor(value, 'cause');
    if (cause !== undefined && ObjectHasOwn(cause, 'value')) {
      ObjectDefineProperty(copy, 'cause', {
        __proto__: null, value: cloneValue(cause.value, memory), writable: true, configurable: true,
      });
    }
    return copy;
  } else if (id === ids.array) {
    copy = new Array_(value.length);
    MapPrototypeSet(memory, value, copy);
    const keys = ObjectKeys(value);
    for (let i = 0; i < keys.length; i++) {
      defineData(copy, keys[i], cloneValue(value[keys[i]], memory));
    }
    return copy;
  } else if (id === ids.object || id === ids.arguments) {
    copy = {};
    MapPrototypeSet(memory, value, copy);
    const keys = ObjectKeys(value);
    for (let i = 0; i < keys.length; i++) {
      defineData(copy, keys[i], cloneValue(value[keys[i]], memory));
    }
    return copy;
  } else if (id === ids.symbol) {
    throw dataCloneError('A Symbol object');
  } else if (id === ids.sharedArrayBuffer) {
    throw dataCloneError('A SharedArrayBuffer');
  } else {
    throw dataCloneError(`${ObjectPrototypeToString(value)}`);
  }
  MapPrototypeSet(memory, value, copy);
  return copy;
};

const structuredClone = function structuredClone(value, options = undefined) {
  if (arguments.length === 0) {
    throw new TypeError_("Failed to execute 'structuredClone': 1 argument required, but only 0 present.");
  }
  const transfer = dictionary(options, 'The options').transfer;
  if (transfer !== undefined) {
    let count = 0;
    for (const _ of transfer) count++;
    if (count > 0) throw dataCloneError('Transferring is not supported: the transfer list');
  }
  return cloneValue(value, new Map_());
};

return {__proto__: null, structuredClone};
