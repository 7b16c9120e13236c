// The part of the Web APIs every group shares, built from the built-ins captured before any
// script ran (`capture.rs`, whose names are in scope here) the first time a script reaches for
// a Web API: DOMException, queueMicrotask and what the groups share. Each group of APIs is
// compiled with the captured names and the top-level names below in scope. A name with
// `Prototype` and more inside (`MapPrototypeGet`, not `ObjectGetPrototypeOf`) is a method or
// getter, "uncurried" in the groups (called as `method(thisValue, ...args)` through a bound
// `Function.prototype.call`, so a call looks nothing up). Iterating arrays, spreading or
// destructuring them would call the script's `Array.prototype[Symbol.iterator]`: the groups
// use index loops instead.
const uncurryThis = ReflectApply(FunctionPrototypeBind, FunctionPrototypeBind, [FunctionPrototypeCall]);
const TYPED_ARRAYS = {
  __proto__: null,
  Int8Array: Int8Array_, Uint8Array: Uint8Array_, Uint8ClampedArray: Uint8ClampedArray_,
  Int16Array: Int16Array_, Uint16Array: Uint16Array_, Int32Array: Int32Array_,
  Uint32Array: Uint32Array_, Float16Array: Float16Array_, Float32Array: Float32Array_,
  Float64Array: Float64Array_, BigInt64Array: BigInt64Array_, BigUint64Array: BigUint64Array_,
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

const queueMicrotask = function queueMicrotask(callback) {
  return native.queueMicrotask(callback);
};
