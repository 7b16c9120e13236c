// crypto.getRandomValues and crypto.randomUUID (Web Cryptography API), without SubtleCrypto.
const INTEGER_ARRAYS = {
  __proto__: null,
  Int8Array: true, Uint8Array: true, Uint8ClampedArray: true, Int16Array: true,
  Uint16Array: true, Int32Array: true, Uint32Array: true, BigInt64Array: true,
  BigUint64Array: true,
};
const MAX_RANDOM_BYTES = 65536;

class Crypto {
  #brand = true;

  constructor(key = undefined) {
    if (key !== NOT_CONSTRUCTIBLE) throw new TypeError_('Illegal constructor');
  }

  getRandomValues(array) {
    void this.#brand;
    if (arguments.length === 0) {
      throw new TypeError_("Failed to execute 'getRandomValues': 1 argument required, but only 0 present.");
    }
    const name = TypedArrayPrototypeGetName(array);
    if (name === undefined && classOf(array) !== classes().dataView) {
      throw new TypeError_("Failed to execute 'getRandomValues': parameter 1 is not of type 'ArrayBufferView'.");
    }
    if (name === undefined || INTEGER_ARRAYS[name] !== true) {
      throw new DOMException(
        `Failed to execute 'getRandomValues': The provided ArrayBufferView is of type '${name ?? 'DataView'}', which is not an integer array type.`,
        'TypeMismatchError',
      );
    }
    const length = TypedArrayPrototypeGetByteLength(array);
    if (length > MAX_RANDOM_BYTES) {
      throw new DOMException(
        `Failed to execute 'getRandomValues': The ArrayBufferView's byte length (${length}) exceeds the number of bytes of entropy available via this API (${MAX_RANDOM_BYTES}).`,
        'QuotaExceededError',
      );
    }
    native.fillRandom(
      TypedArrayPrototypeGetBuffer(array), TypedArrayPrototypeGetByteOffset(array), length,
    );
    return array;
  }

  randomUUID() {
    void this.#brand;
    return native.randomUUID();
  }
}
tag(Crypto, 'Crypto');
const crypto = new Crypto(NOT_CONSTRUCTIBLE);

return {__proto__: null, Crypto, crypto};
