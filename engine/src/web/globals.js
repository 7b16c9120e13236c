// Every global, defined as WebIDL defines them: writable, configurable, not enumerable.
// DOMException and queueMicrotask are defined at once; the others are read the first time a
// script reaches for one of their group (each group's code is compiled apart), which keeps
// preparing a runtime cheap. Groups are built from the built-ins captured above, so what a
// script changed before reaching for them does not reach them.
const GROUP_OF = {
  __proto__: null,
  Event: 0, EventTarget: 0, AbortController: 0, AbortSignal: 0, Performance: 0, performance: 0,
  TextEncoder: 1, TextDecoder: 1, atob: 1, btoa: 1,
  Crypto: 2, crypto: 2,
  URL: 3, URLSearchParams: 3,
  structuredClone: 4,
};
const groups = {__proto__: null};

const defineGlobal = (name, value) => {
  ObjectDefineProperty(global, name, {
    __proto__: null, value, writable: true, configurable: true,
  });
};

defineGlobal('DOMException', DOMException);
defineGlobal('queueMicrotask', function queueMicrotask(callback) {
  return native.queueMicrotask(callback);
});
// Defines `name` as a global read from group `group` the first time a script reaches for it.
const defineLazy = (name, group) => {
  ObjectDefineProperty(global, name, {
    __proto__: null,
    configurable: true,
    get() {
      const exports = groups[group] ??= native.loadGroup(group, primordials);
      defineGlobal(name, exports[name]);
      return exports[name];
    },
    set(value) {
      defineGlobal(name, value);
    },
  });
};
const lazyNames = ObjectKeys(GROUP_OF);
for (let i = 0; i < lazyNames.length; i++) {
  defineLazy(lazyNames[i], GROUP_OF[lazyNames[i]]);
}
// The groups offered to some executions only (fetch) are defined by the engine with this.
return defineLazy;
