// fetch, Headers and Response (the Fetch Standard's), for executions whose tenant was granted
// fetch. The request itself is made by the host: native.hostFetch(url, {method, headers, body})
// is an asynchronous host function (see the engine's `host` module) that checks the tenant's
// allow-list and the address rules, makes the request outside this process, and answers
// {status, statusText, url, redirected, headers, body} with the body as base64. Everything a
// script may get wrong (a bad URL, a forbidden host, a cap) rejects with a TypeError whose
// message names the rule.

const hostFetch = native.hostFetch;
const hostAbandon = native.hostAbandon;

// HTTP whitespace around a header value is not part of it.
const isHttpWhitespace = (code) => code === 0x09 || code === 0x0A || code === 0x0D || code === 0x20;
const normalizeValue = (value) => {
  value = `${value}`;
  let start = 0;
  let end = value.length;
  while (start < end && isHttpWhitespace(StringPrototypeCharCodeAt(value, start))) start++;
  while (end > start && isHttpWhitespace(StringPrototypeCharCodeAt(value, end - 1))) end--;
  return StringPrototypeSlice(value, start, end);
};

// A header name: an HTTP token (RFC 9110), compared without case.
const isTokenCode = (code) => (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5A)
  || (code >= 0x61 && code <= 0x7A) || code === 0x21 || (code >= 0x23 && code <= 0x27)
  || code === 0x2A || code === 0x2B || code === 0x2D || code === 0x2E || code === 0x5E
  || code === 0x5F || code === 0x60 || code === 0x7C || code === 0x7E;
const headerName = (name) => {
  name = `${name}`;
  if (name.length === 0) throw new TypeError_(`Header name must be a valid HTTP token ["${name}"]`);
  for (let i = 0; i < name.length; i++) {
    if (!isTokenCode(StringPrototypeCharCodeAt(name, i))) {
      throw new TypeError_(`Header name must be a valid HTTP token ["${name}"]`);
    }
  }
  return StringPrototypeToLowerCase(name);
};
const headerValue = (value) => {
  value = normalizeValue(value);
  for (let i = 0; i < value.length; i++) {
    const code = StringPrototypeCharCodeAt(value, i);
    if (code === 0x00 || code === 0x0A || code === 0x0D || code > 0xFF) {
      throw new TypeError_(`Header value is not valid ["${value}"]`);
    }
  }
  return value;
};

let headersList;

class Headers {
  #list = [];

  constructor(init = undefined) {
    if (init === undefined || init === null) return;
    if (typeof init !== 'object' && typeof init !== 'function') {
      throw new TypeError_("Failed to construct 'Headers': The provided value is not of type '(record<ByteString, ByteString> or sequence<sequence<ByteString>>)'.");
    }
    if (init instanceof Headers) {
      const list = init.#list;
      for (let i = 0; i < list.length; i++) ArrayPrototypePush(this.#list, [list[i][0], list[i][1]]);
      return;
    }
    if (typeof init[SymbolIterator] === 'function') {
      for (const pair of init) {
        const entry = [];
        for (const part of pair) ArrayPrototypePush(entry, part);
        if (entry.length !== 2) {
          throw new TypeError_("Failed to construct 'Headers': Invalid value: each header must be a [name, value] pair.");
        }
        this.append(entry[0], entry[1]);
      }
      return;
    }
    const keys = ReflectOwnKeys(init);
    for (let i = 0; i < keys.length; i++) {
      const descriptor = ObjectGetOwnPropertyDescriptor(init, keys[i]);
      if (descriptor !== undefined && descriptor.enumerable) {
        if (typeof keys[i] === 'symbol') throw new TypeError_('Header names must be strings.');
        this.append(keys[i], init[keys[i]]);
      }
    }
  }

  append(name, value) {
    ArrayPrototypePush(this.#list, [headerName(name), headerValue(value)]);
  }

  delete(name) {
    name = headerName(name);
    const list = this.#list;
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i][0] === name) ArrayPrototypeSplice(list, i, 1);
    }
  }

  get(name) {
    name = headerName(name);
    let found = null;
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name) found = found === null ? list[i][1] : `${found}, ${list[i][1]}`;
    }
    return found;
  }

  getSetCookie() {
    const values = [];
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === 'set-cookie') ArrayPrototypePush(values, list[i][1]);
    }
    return values;
  }

  has(name) {
    name = headerName(name);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === name) return true;
    return false;
  }

  set(name, value) {
    name = headerName(name);
    value = headerValue(value);
    const list = this.#list;
    let replaced = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== name) continue;
      if (replaced) {
        ArrayPrototypeSplice(list, i, 1);
        i--;
      } else {
        list[i][1] = value;
        replaced = true;
      }
    }
    if (!replaced) ArrayPrototypePush(list, [name, value]);
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== 'function') {
      throw new TypeError_("Failed to execute 'forEach' on 'Headers': parameter 1 is not of type 'Function'.");
    }
    const pairs = sortedAndCombined(this.#list);
    for (let i = 0; i < pairs.length; i++) ReflectApply(callback, thisArg, [pairs[i][1], pairs[i][0], this]);
  }

  entries() {
    return new HeadersIterator(NOT_CONSTRUCTIBLE, sortedAndCombined(this.#list), 2);
  }

  keys() {
    return new HeadersIterator(NOT_CONSTRUCTIBLE, sortedAndCombined(this.#list), 0);
  }

  values() {
    return new HeadersIterator(NOT_CONSTRUCTIBLE, sortedAndCombined(this.#list), 1);
  }

  static {
    headersList = (headers) => headers.#list;
  }
}
ObjectDefineProperty(Headers.prototype, SymbolIterator, {
  __proto__: null, value: Headers.prototype.entries, writable: true, configurable: true,
});
tag(Headers, 'Headers');

// The Fetch Standard's "sort and combine": names in order, values of a name joined by ", ",
// except set-cookie, whose values stay apart.
const sortedAndCombined = (list) => {
  const sorted = ArrayPrototypeSlice(list);
  ArrayPrototypeSort(sorted, (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const pairs = [];
  for (let i = 0; i < sorted.length; i++) {
    const name = sorted[i][0];
    const value = sorted[i][1];
    const last = pairs.length > 0 ? pairs[pairs.length - 1] : null;
    if (last !== null && last[0] === name && name !== 'set-cookie') {
      last[1] = `${last[1]}, ${value}`;
    } else {
      ArrayPrototypePush(pairs, [name, value]);
    }
  }
  return pairs;
};

class HeadersIterator {
  #pairs;
  #kind;
  #index = 0;

  constructor(key, pairs, kind) {
    if (key !== NOT_CONSTRUCTIBLE) throw new TypeError_('Illegal constructor');
    this.#pairs = pairs;
    this.#kind = kind;
  }

  next() {
    if (this.#index >= this.#pairs.length) return {value: undefined, done: true};
    const pair = this.#pairs[this.#index++];
    const value = this.#kind === 0 ? pair[0] : this.#kind === 1 ? pair[1] : [pair[0], pair[1]];
    return {value, done: false};
  }
}
ObjectSetPrototypeOf(HeadersIterator.prototype, IteratorPrototype);
tag(HeadersIterator, 'Headers Iterator');

// A body given by a script: its bytes (a Uint8Array) and the content type it implies.
const extractBody = (body) => {
  if (typeof body === 'string') {
    return [native.encode(body), 'text/plain;charset=UTF-8'];
  }
  if (typeof body === 'object' && body !== null) {
    if (TypedArrayPrototypeGetName(body) !== undefined || classOf(body) === classes().dataView
      || classOf(body) === classes().arrayBuffer) {
      const view = viewOf(body, 'body');
      return [new Uint8Array_(ArrayBufferPrototypeSlice(view[0], view[1], view[1] + view[2])), null];
    }
    if (ObjectPrototypeToString(body) === '[object URLSearchParams]') {
      return [native.encode(`${body}`), 'application/x-www-form-urlencoded;charset=UTF-8'];
    }
  }
  return [native.encode(`${body}`), 'text/plain;charset=UTF-8'];
};
const bytesOf = (bytes) => [
  TypedArrayPrototypeGetBuffer(bytes),
  TypedArrayPrototypeGetByteOffset(bytes),
  TypedArrayPrototypeGetByteLength(bytes),
];

const NULL_BODY_STATUS = (status) => status === 101 || status === 103 || status === 204
  || status === 205 || status === 304;

// Makes a Response of the host's answer (set by the class's static block).
let fromHost;

class Response {
  #status = 200;
  #statusText = '';
  #headers;
  #url = '';
  #redirected = false;
  #type = 'default';
  #body = null;
  #used = false;

  constructor(body = null, init = undefined) {
    init = dictionary(init, "Failed to construct 'Response': The provided value");
    const status = init.status === undefined ? 200 : Number_(init.status);
    if (!(status >= 200 && status <= 599) || MathFloor(status) !== status) {
      throw new RangeError_(`Failed to construct 'Response': The status provided (${status}) is outside the range [200, 599].`);
    }
    this.#status = status;
    this.#statusText = init.statusText === undefined ? '' : `${init.statusText}`;
    this.#headers = new Headers(init.headers);
    if (body !== null && body !== undefined) {
      if (NULL_BODY_STATUS(status)) {
        throw new TypeError_("Failed to construct 'Response': Response with null body status cannot have body");
      }
      const extracted = extractBody(body);
      this.#body = extracted[0];
      if (extracted[1] !== null && !this.#headers.has('content-type')) {
        this.#headers.set('content-type', extracted[1]);
      }
    }
  }

  static json(data, init = undefined) {
    const text = JSONStringify(data);
    if (text === undefined) throw new TypeError_('The data is not JSON serializable');
    const response = new Response(text, init);
    response.headers.set('content-type', 'application/json');
    return response;
  }

  static error() {
    const response = new Response(null, {status: 200});
    response.#status = 0;
    response.#type = 'error';
    return response;
  }

  get type() { return this.#type; }
  get url() { return this.#url; }
  get redirected() { return this.#redirected; }
  get status() { return this.#status; }
  get ok() { return this.#status >= 200 && this.#status <= 299; }
  get statusText() { return this.#statusText; }
  get headers() { return this.#headers; }
  get body() { return null; }
  get bodyUsed() { return this.#used; }

  #consume() {
    if (this.#used) return PromiseReject(new TypeError_('Body has already been consumed.'));
    this.#used = true;
    return null;
  }

  arrayBuffer() {
    const used = this.#consume();
    if (used !== null) return used;
    if (this.#body === null) return PromiseResolve(new ArrayBuffer_(0));
    const view = bytesOf(this.#body);
    return PromiseResolve(ArrayBufferPrototypeSlice(view[0], view[1], view[1] + view[2]));
  }

  bytes() {
    return PromisePrototypeThen(this.arrayBuffer(), (buffer) => new Uint8Array_(buffer));
  }

  text() {
    const used = this.#consume();
    if (used !== null) return used;
    if (this.#body === null) return PromiseResolve('');
    const view = bytesOf(this.#body);
    return PromiseResolve(native.decodeUtf8(view[0], view[1], view[2]));
  }

  json() {
    return PromisePrototypeThen(this.text(), (text) => JSONParse(text));
  }

  clone() {
    if (this.#used) throw new TypeError_("Failed to execute 'clone' on 'Response': Response body is already used");
    const copy = new Response(null, {status: 200});
    copy.#status = this.#status;
    copy.#statusText = this.#statusText;
    copy.#headers = new Headers(this.#headers);
    copy.#url = this.#url;
    copy.#redirected = this.#redirected;
    copy.#type = this.#type;
    copy.#body = this.#body;
    return copy;
  }

  static {
    fromHost = (answer) => {
      const response = new Response(null, {status: 200});
      response.#status = answer.status;
      response.#statusText = answer.statusText;
      const headers = new Headers();
      const list = headersList(headers);
      for (let i = 0; i < answer.headers.length; i++) {
        ArrayPrototypePush(list, [answer.headers[i][0], answer.headers[i][1]]);
      }
      response.#headers = headers;
      response.#url = answer.url;
      response.#redirected = answer.redirected;
      response.#type = 'basic';
      response.#body = new Uint8Array_(native.fromBase64(answer.body));
      return response;
    };
  }
}
tag(Response, 'Response');

const PromiseResolve = (value) => new Promise_((resolve) => resolve(value));
const PromiseReject = (reason) => new Promise_((_, reject) => reject(reason));

// Methods the Fetch Standard normalises to upper case; others are sent as written.
const NORMALIZED_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH'];
const normalizeMethod = (method) => {
  method = `${method}`;
  const upper = StringPrototypeToUpperCase(method);
  for (let i = 0; i < NORMALIZED_METHODS.length; i++) {
    if (upper === NORMALIZED_METHODS[i]) return upper;
  }
  for (let i = 0; i < method.length; i++) {
    if (!isTokenCode(StringPrototypeCharCodeAt(method, i))) {
      throw new TypeError_(`'${method}' is not a valid HTTP method.`);
    }
  }
  return method;
};

function fetch(input, init = undefined) {
  try {
    init = dictionary(init, "Failed to execute 'fetch': The provided value");
    let url;
    let method = 'GET';
    let headers;
    if (typeof input === 'object' && input !== null && typeof input.url === 'string'
      && ObjectPrototypeToString(input) !== '[object URL]') {
      url = input.url;
      if (input.method !== undefined) method = normalizeMethod(input.method);
      headers = new Headers(input.headers);
    } else {
      url = toUSVString(input);
      headers = new Headers();
    }
    if (init.method !== undefined) method = normalizeMethod(init.method);
    if (init.headers !== undefined) headers = new Headers(init.headers);
    let body = null;
    if (init.body !== undefined && init.body !== null) {
      if (method === 'GET' || method === 'HEAD') {
        throw new TypeError_("Failed to execute 'fetch': Request with GET/HEAD method cannot have body.");
      }
      const extracted = extractBody(init.body);
      if (extracted[1] !== null && !headers.has('content-type')) headers.set('content-type', extracted[1]);
      const view = bytesOf(extracted[0]);
      body = native.toBase64(view[0], view[1], view[2]);
    }
    const signal = init.signal ?? null;
    if (signal !== null && signal.aborted) return PromiseReject(signal.reason);
    const list = headersList(headers);
    const sent = [];
    for (let i = 0; i < list.length; i++) ArrayPrototypePush(sent, [list[i][0], list[i][1]]);
    const call = hostFetch(url, {method, headers: sent, body});
    const request = PromisePrototypeThen(call, (answer) => fromHost(answer));
    if (signal === null) return request;
    return new Promise_((resolve, reject) => {
      // An aborted fetch is forgotten: the execution no longer waits for its answer.
      signal.addEventListener('abort', () => {
        hostAbandon(call);
        reject(signal.reason);
      }, {once: true});
      PromisePrototypeThen(request, resolve, reject);
    });
  } catch (error) {
    return PromiseReject(error);
  }
}

return {__proto__: null, fetch, Headers, Response};
