// The part of the Web APIs that runs in every runtime before any script: the built-ins the
// APIs use, captured before any script can change them, and DOMException. Each group of APIs
// is compiled with these top-level names in scope. A name with `Prototype` and more inside
// (`MapPrototypeGet`, not `ObjectGetPrototypeOf`) is a method or getter, "uncurried" in the
// groups (called as `method(thisValue, ...args)` through a bound `Function.prototype.call`,
// so a call looks nothing up). Iterating arrays, spreading or destructuring them would call
// the script's `Array.prototype[Symbol.iterator]`: the groups use index loops instead.
const uncurryThis = Function.prototype.bind.bind(Function.prototype.call);
const ObjectDefineProperty = Object.defineProperty;
const ObjectGetOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
const ObjectGetPrototypeOf = Object.getPrototypeOf;
const ObjectSetPrototypeOf = Object.setPrototypeOf;
const ObjectKeys = Object.keys;
const ObjectHasOwn = Object.hasOwn;
const ObjectPrototypeToString = Object.prototype.toString;
const ReflectApply = Reflect.apply;
const ReflectOwnKeys = Reflect.ownKeys;
const getter = (object, key) => ObjectGetOwnPropertyDescriptor(object, key).get;
const Object_ = Object;
const Array_ = Array;
const ArrayPrototypeSort = Array.prototype.sort;
const ArrayPrototypeSplice = Array.prototype.splice;
const ArrayPrototypeSlice = Array.prototype.slice;
const ArrayPrototypePush = Array.prototype.push;
const IteratorPrototype = Iterator.prototype;
const String_ = String;
const StringPrototypeCharCodeAt = String.prototype.charCodeAt;
const StringPrototypeSlice = String.prototype.slice;
const StringPrototypeToLowerCase = String.prototype.toLowerCase;
const StringPrototypeToUpperCase = String.prototype.toUpperCase;
const StringPrototypeToWellFormed = String.prototype.toWellFormed;
const StringPrototypeValueOf = String.prototype.valueOf;
const NumberPrototypeValueOf = Number.prototype.valueOf;
const BooleanPrototypeValueOf = Boolean.prototype.valueOf;
const BigIntPrototypeValueOf = BigInt.prototype.valueOf;
const Number_ = Number;
const Promise_ = Promise;
const PromisePrototypeThen = Promise.prototype.then;
const JSONParse = JSON.parse;
const JSONStringify = JSON.stringify;
const MathFloor = Math.floor;
const SymbolIterator = Symbol.iterator;
const SymbolToStringTag = Symbol.toStringTag;
const Error_ = Error;
const TypeError_ = TypeError;
const RangeError_ = RangeError;
const EvalError_ = EvalError;
const ReferenceError_ = ReferenceError;
const SyntaxError_ = SyntaxError;
const URIError_ = URIError;
const Date_ = Date;
const DatePrototypeGetTime = Date.prototype.getTime;
const RegExp_ = RegExp;
const RegExpPrototypeGetSource = getter(RegExp.prototype, 'source');
const RegExpPrototypeGetFlags = getter(RegExp.prototype, 'flags');
const Map_ = Map;
const MapPrototypeGet = Map.prototype.get;
const MapPrototypeSet = Map.prototype.set;
const MapPrototypeHas = Map.prototype.has;
const MapPrototypeEntries = Map.prototype.entries;
const MapIteratorPrototypeNext = new Map()[Symbol.iterator]().next;
const Set_ = Set;
const SetPrototypeAdd = Set.prototype.add;
const SetPrototypeValues = Set.prototype.values;
const SetIteratorPrototypeNext = new Set()[Symbol.iterator]().next;
const ArrayBuffer_ = ArrayBuffer;
const ArrayBufferPrototypeSlice = ArrayBuffer.prototype.slice;
const ArrayBufferPrototypeGetByteLength = getter(ArrayBuffer.prototype, 'byteLength');
const ArrayBufferPrototypeGetDetached = getter(ArrayBuffer.prototype, 'detached');
const ArrayBufferPrototypeGetResizable = getter(ArrayBuffer.prototype, 'resizable');
const ArrayBufferPrototypeGetMaxByteLength = getter(ArrayBuffer.prototype, 'maxByteLength');
const TypedArrayPrototype = ObjectGetPrototypeOf(Uint8Array.prototype);
const TypedArrayPrototypeGetName = getter(TypedArrayPrototype, SymbolToStringTag);
const TypedArrayPrototypeGetBuffer = getter(TypedArrayPrototype, 'buffer');
const TypedArrayPrototypeGetByteOffset = getter(TypedArrayPrototype, 'byteOffset');
const TypedArrayPrototypeGetByteLength = getter(TypedArrayPrototype, 'byteLength');
const TypedArrayPrototypeGetLength = getter(TypedArrayPrototype, 'length');
const TypedArrayPrototypeSet = TypedArrayPrototype.set;
const Uint8Array_ = Uint8Array;
const SharedArrayBuffer_ = SharedArrayBuffer;
const SharedArrayBufferPrototypeGetByteLength = getter(SharedArrayBuffer.prototype, 'byteLength');
const DataView_ = DataView;
const DataViewPrototypeGetBuffer = getter(DataView.prototype, 'buffer');
const DataViewPrototypeGetByteOffset = getter(DataView.prototype, 'byteOffset');
const DataViewPrototypeGetByteLength = getter(DataView.prototype, 'byteLength');
const TYPED_ARRAYS = {
  __proto__: null,
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float16Array: globalThis.Float16Array, Float32Array, Float64Array, BigInt64Array,
  BigUint64Array,
};

// The key that lets the APIs construct the objects WebIDL makes not constructible.
const NOT_CONSTRUCTIBLE = {};

// Sets the `Symbol.toStringTag` a WebIDL interface's prototype has.
const tag = (Class, name) => {
  ObjectDefineProperty(Class.prototype, SymbolToStringTag, {
    __proto__: null, value: name, configurable: true,
  });
};
// DOMException (WebIDL): the errors the Web APIs throw, with the standard's names and legacy
// codes. An Error subclass, so the service reports its name and message like any error's.
const DOM_EXCEPTION_CODES = {
  __proto__: null,
  IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
  NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11,
  SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15,
  TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20,
  URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24,
  DataCloneError: 25,
};

class DOMException extends Error_ {
  #name;
  #message;

  constructor(message = '', name = 'Error') {
    super();
    this.#message = `${message}`;
    this.#name = `${name}`;
  }

  get name() {
    return this.#name;
  }

  get message() {
    return this.#message;
  }

  get code() {
    return DOM_EXCEPTION_CODES[this.#name] ?? 0;
  }
}
tag(DOMException, 'DOMException');
