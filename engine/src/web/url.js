// URL and URLSearchParams (URL Standard). A URL holds its components as the Rust half (the
// `url` crate) parsed them; every setter sends the href back to be changed there. A URL's
// searchParams and the URL update each other as the standard's "update steps" say.
const HREF = 0;
const SEARCH = 9;
let paramsForURL;
let paramsReplace;
let urlSetQuery;

class URL {
  #components;
  #searchParams;

  constructor(url, base = undefined) {
    if (arguments.length === 0) {
      throw new TypeError_("Failed to construct 'URL': 1 argument required, but only 0 present.");
    }
    url = `${url}`;
    const components = base === undefined
      ? native.parseURL(url) : native.parseURL(url, `${base}`);
    if (components === undefined) throw new TypeError_(`Failed to construct 'URL': Invalid URL '${url}'`);
    this.#components = components;
    this.#searchParams = paramsForURL(this, components[SEARCH]);
  }

  static {
    urlSetQuery = (url, query) => {
      url.#components = native.setURL(url.#components[HREF], SEARCH, query);
    };
  }

  static canParse(url, base = undefined) {
    url = `${url}`;
    return (base === undefined ? native.parseURL(url) : native.parseURL(url, `${base}`)) !== undefined;
  }

  static parse(url, base = undefined) {
    try {
      return base === undefined ? new URL(url) : new URL(url, base);
    } catch {
      return null;
    }
  }

  #set(index, value) {
    this.#components = native.setURL(this.#components[HREF], index, `${value}`);
  }

  get href() { return this.#components[HREF]; }

  set href(value) {
    const components = native.setURL(this.#components[HREF], HREF, `${value}`);
    if (components === undefined) throw new TypeError_(`Failed to set 'href': Invalid URL '${value}'`);
    this.#components = components;
    paramsReplace(this.#searchParams, components[SEARCH]);
  }

  get origin() { return this.#components[1]; }
  get protocol() { return this.#components[2]; }
  set protocol(value) { this.#set(2, value); }
  get username() { return this.#components[3]; }
  set username(value) { this.#set(3, value); }
  get password() { return this.#components[4]; }
  set password(value) { this.#set(4, value); }
  get host() { return this.#components[5]; }
  set host(value) { this.#set(5, value); }
  get hostname() { return this.#components[6]; }
  set hostname(value) { this.#set(6, value); }
  get port() { return this.#components[7]; }
  set port(value) { this.#set(7, value); }
  get pathname() { return this.#components[8]; }
  set pathname(value) { this.#set(8, value); }
  get search() { return this.#components[SEARCH]; }

  set search(value) {
    this.#set(SEARCH, value);
    paramsReplace(this.#searchParams, this.#components[SEARCH]);
  }

  get searchParams() { return this.#searchParams; }
  get hash() { return this.#components[10]; }
  set hash(value) { this.#set(10, value); }
  toString() { return this.#components[HREF]; }
  toJSON() { return this.#components[HREF]; }
}
tag(URL, 'URL');

// The list of name-value pairs from a query string, as [name, value] arrays.
const parseQuery = (query) => {
  const flat = native.parseQuery(query);
  const list = [];
  for (let i = 0; i < flat.length; i += 2) list[list.length] = [flat[i], flat[i + 1]];
  return list;
};

const KIND_KEYS = 0;
const KIND_VALUES = 1;
const KIND_ENTRIES = 2;
let newParamsIterator;

class URLSearchParams {
  #list = [];
  #url = null;

  constructor(init = '') {
    if (init !== null && (typeof init === 'object' || typeof init === 'function')) {
      const method = init[SymbolIterator];
      if (method !== undefined && method !== null) {
        if (typeof method !== 'function') {
          throw new TypeError_("Failed to construct 'URLSearchParams': the iterator is not callable.");
        }
        for (const pair of {[SymbolIterator]: () => ReflectApply(method, init, [])}) {
          const items = [];
          if (pair === null || typeof pair !== 'object') {
            throw new TypeError_("Failed to construct 'URLSearchParams': a pair is not iterable.");
          }
          for (const item of pair) items[items.length] = toUSVString(item);
          if (items.length !== 2) {
            throw new TypeError_("Failed to construct 'URLSearchParams': a pair does not have exactly two items.");
          }
          this.#list[this.#list.length] = items;
        }
      } else {
        const keys = ReflectOwnKeys(init);
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i];
          if (typeof key !== 'string') continue;
          const descriptor = ObjectGetOwnPropertyDescriptor(init, key);
          if (descriptor === undefined || !descriptor.enumerable) continue;
          const name = toUSVString(key);
          const value = toUSVString(init[key]);
          const list = this.#list;
          let found = false;
          for (let j = 0; j < list.length; j++) {
            if (list[j][0] === name) {
              list[j][1] = value;
              found = true;
              break;
            }
          }
          if (!found) list[list.length] = [name, value];
        }
      }
    } else {
      init = toUSVString(init);
      if (StringPrototypeCharCodeAt(init, 0) === 0x3f) init = StringPrototypeSlice(init, 1);
      this.#list = parseQuery(init);
    }
  }

  static {
    paramsForURL = (url, search) => {
      const params = new URLSearchParams(search);
      params.#url = url;
      return params;
    };
    paramsReplace = (params, search) => {
      params.#list = parseQuery(StringPrototypeSlice(search, 1));
    };
    newParamsIterator = (params, kind) => new URLSearchParamsIterator(
      NOT_CONSTRUCTIBLE, () => params.#list, kind,
    );
  }

  #update() {
    if (this.#url === null) return;
    urlSetQuery(this.#url, this.#serialize());
  }

  #serialize() {
    const list = this.#list;
    const flat = [];
    for (let i = 0; i < list.length; i++) {
      flat[flat.length] = list[i][0];
      flat[flat.length] = list[i][1];
    }
    return native.serializeQuery(flat);
  }

  get size() {
    return this.#list.length;
  }

  append(name, value) {
    this.#list[this.#list.length] = [toUSVString(name), toUSVString(value)];
    this.#update();
  }

  delete(name, value = undefined) {
    name = toUSVString(name);
    if (value !== undefined) value = toUSVString(value);
    const list = this.#list;
    const kept = [];
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name && (value === undefined || list[i][1] === value)) continue;
      kept[kept.length] = list[i];
    }
    this.#list = kept;
    this.#update();
  }

  get(name) {
    name = toUSVString(name);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === name) return list[i][1];
    return null;
  }

  getAll(name) {
    name = toUSVString(name);
    const list = this.#list;
    const values = [];
    for (let i = 0; i < list.length; i++) if (list[i][0] === name) values[values.length] = list[i][1];
    return values;
  }

  has(name, value = undefined) {
    name = toUSVString(name);
    if (value !== undefined) value = toUSVString(value);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === name && (value === undefined || list[i][1] === value)) return true;
    }
    return false;
  }

  set(name, value) {
    name = toUSVString(name);
    value = toUSVString(value);
    const list = this.#list;
    const kept = [];
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== name) {
        kept[kept.length] = list[i];
      } else if (!found) {
        found = true;
        kept[kept.length] = [name, value];
      }
    }
    if (!found) kept[kept.length] = [name, value];
    this.#list = kept;
    this.#update();
  }

  sort() {
    // Stable, by the names' UTF-16 code units, which is how `<` compares strings.
    ArrayPrototypeSort(this.#list, (a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.#update();
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== 'function') {
      throw new TypeError_("Failed to execute 'forEach': parameter 1 is not of type 'Function'.");
    }
    for (let i = 0; i < this.#list.length; i++) {
      const pair = this.#list[i];
      ReflectApply(callback, thisArg, [pair[1], pair[0], this]);
    }
  }

  entries() { void this.#list; return newParamsIterator(this, KIND_ENTRIES); }
  keys() { void this.#list; return newParamsIterator(this, KIND_KEYS); }
  values() { void this.#list; return newParamsIterator(this, KIND_VALUES); }

  toString() {
    return this.#serialize();
  }
}
ObjectDefineProperty(URLSearchParams.prototype, SymbolIterator, {
  __proto__: null,
  value: URLSearchParams.prototype.entries,
  writable: true,
  configurable: true,
});
tag(URLSearchParams, 'URLSearchParams');

// WebIDL's default iterator over the live list: an index into it.
class URLSearchParamsIterator {
  #list;
  #kind;
  #index = 0;

  constructor(key, list, kind) {
    if (key !== NOT_CONSTRUCTIBLE) throw new TypeError_('Illegal constructor');
    this.#list = list;
    this.#kind = kind;
  }

  next() {
    const list = this.#list();
    if (this.#index >= list.length) return {value: undefined, done: true};
    const pair = list[this.#index++];
    const value = this.#kind === KIND_KEYS ? pair[0]
      : this.#kind === KIND_VALUES ? pair[1] : [pair[0], pair[1]];
    return {value, done: false};
  }
}
ObjectSetPrototypeOf(URLSearchParamsIterator.prototype, IteratorPrototype);
tag(URLSearchParamsIterator, 'URLSearchParams Iterator');

return {__proto__: null, URL, URLSearchParams};
