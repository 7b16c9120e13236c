// TextEncoder and TextDecoder (Encoding Standard), atob and btoa (HTML Standard): the classes
// and argument conversions; the byte work is the Rust half's.
class TextEncoder {
  #brand = true;

  get encoding() {
    void this.#brand;
    return 'utf-8';
  }

  encode(input = '') {
    void this.#brand;
    return native.encode(`${input}`);
  }

  encodeInto(source, destination) {
    void this.#brand;
    source = `${source}`;
    if (TypedArrayPrototypeGetName(destination) !== 'Uint8Array') {
      throw new TypeError_("Failed to execute 'encodeInto': parameter 2 is not of type 'Uint8Array'.");
    }
    return native.encodeInto(
      source,
      TypedArrayPrototypeGetBuffer(destination),
      TypedArrayPrototypeGetByteOffset(destination),
      TypedArrayPrototypeGetByteLength(destination),
    );
  }
}
tag(TextEncoder, 'TextEncoder');

class TextDecoder {
  #encoding;
  #fatal;
  #ignoreBOM;
  #decode;

  constructor(label = 'utf-8', options = undefined) {
    label = `${label}`;
    const init = dictionary(options, 'The options');
    const fatal = !!init.fatal;
    const ignoreBOM = !!init.ignoreBOM;
    const encoding = native.encodingFor(label);
    if (encoding === undefined) {
      throw new RangeError_(`Failed to construct 'TextDecoder': The encoding label provided ('${label}') is invalid.`);
    }
    this.#encoding = encoding;
    this.#fatal = fatal;
    this.#ignoreBOM = ignoreBOM;
    this.#decode = native.decoder(encoding, fatal, ignoreBOM);
  }

  get encoding() { return this.#encoding; }
  get fatal() { return this.#fatal; }
  get ignoreBOM() { return this.#ignoreBOM; }

  decode(input = undefined, options = undefined) {
    const decode = this.#decode;
    const view = input === undefined ? [undefined, 0, 0]
      : viewOf(input, "Failed to execute 'decode': parameter 1");
    const stream = !!dictionary(options, 'The options').stream;
    return decode(view[0], view[1], view[2], stream);
  }
}
tag(TextDecoder, 'TextDecoder');

const atob = function atob(data) {
  if (arguments.length === 0) {
    throw new TypeError_("Failed to execute 'atob': 1 argument required, but only 0 present.");
  }
  const decoded = native.atob(`${data}`);
  if (decoded === undefined) {
    throw new DOMException(
      "Failed to execute 'atob': The string to be decoded is not correctly encoded.",
      'InvalidCharacterError',
    );
  }
  return decoded;
};

const btoa = function btoa(data) {
  if (arguments.length === 0) {
    throw new TypeError_("Failed to execute 'btoa': 1 argument required, but only 0 present.");
  }
  const encoded = native.btoa(`${data}`);
  if (encoded === undefined) {
    throw new DOMException(
      "Failed to execute 'btoa': The string to be encoded contains characters outside of the Latin1 range.",
      'InvalidCharacterError',
    );
  }
  return encoded;
};

return {__proto__: null, TextEncoder, TextDecoder, atob, btoa};
