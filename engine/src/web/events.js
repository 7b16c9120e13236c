// Event and EventTarget (DOM Standard), without a tree: an event is dispatched at its target
// only. Then AbortController and AbortSignal, with AbortSignal.any's dependent signals and
// AbortSignal.timeout on a weak timer, which does not keep the execution running; and
// `performance` (High Resolution Time), an EventTarget, whose clock the Rust half coarsens to
// 100 microseconds, measured from the start of the execution.
// Internal operations, set by the classes' static blocks: what the standards do to objects'
// internal slots, out of the script's reach.
let eventDispatchStart;
let eventDispatchEnd;
let eventInPassiveListener;
let eventStopsImmediately;
let eventIsDispatching;
let eventType;
let isEvent;
let fireEvent;
let addListener;
let removeListener;
let reportException;
let isAbortSignal;
let abortSignalAborted;
let addAbortAlgorithm;
let signalAbort;
let newAbortSignal;
let dependentAbortSignal;

class Event {
  #type;
  #bubbles;
  #cancelable;
  #composed;
  #timeStamp;
  #target = null;
  #currentTarget = null;
  #phase = 0;
  #dispatching = false;
  #stopPropagation = false;
  #stopImmediatePropagation = false;
  #canceled = false;
  #inPassiveListener = false;
  #trusted = false;

  constructor(type, eventInitDict = undefined) {
    if (arguments.length === 0) {
      throw new TypeError_("Failed to construct 'Event': 1 argument required, but only 0 present.");
    }
    this.#type = `${type}`;
    const init = dictionary(eventInitDict, 'The event init dictionary');
    this.#bubbles = !!init.bubbles;
    this.#cancelable = !!init.cancelable;
    this.#composed = !!init.composed;
    this.#timeStamp = native.now();
  }

  static {
    eventDispatchStart = (event, target, trusted) => {
      event.#dispatching = true;
      event.#trusted = trusted;
      event.#target = target;
      event.#currentTarget = target;
      event.#phase = 2;
    };
    eventDispatchEnd = (event) => {
      event.#dispatching = false;
      event.#currentTarget = null;
      event.#phase = 0;
      event.#stopPropagation = false;
      event.#stopImmediatePropagation = false;
      return !event.#canceled;
    };
    eventInPassiveListener = (event, passive) => {
      event.#inPassiveListener = passive;
    };
    eventStopsImmediately = (event) => event.#stopImmediatePropagation;
    eventIsDispatching = (event) => event.#dispatching;
    eventType = (event) => event.#type;
    isEvent = (value) => value !== null && typeof value === 'object' && #type in value;
  }

  get type() { return this.#type; }
  get target() { return this.#target; }
  get srcElement() { return this.#target; }
  get currentTarget() { return this.#currentTarget; }
  get eventPhase() { return this.#phase; }
  get bubbles() { return this.#bubbles; }
  get cancelable() { return this.#cancelable; }
  get composed() { return this.#composed; }
  get defaultPrevented() { return this.#canceled; }
  get isTrusted() { return this.#trusted; }
  get timeStamp() { return this.#timeStamp; }
  get returnValue() { return !this.#canceled; }

  set returnValue(value) {
    if (!value) this.preventDefault();
  }

  get cancelBubble() { return this.#stopPropagation; }

  set cancelBubble(value) {
    if (value) this.#stopPropagation = true;
  }

  composedPath() {
    return this.#dispatching ? [this.#currentTarget] : [];
  }

  stopPropagation() {
    this.#stopPropagation = true;
  }

  stopImmediatePropagation() {
    this.#stopPropagation = true;
    this.#stopImmediatePropagation = true;
  }

  preventDefault() {
    if (this.#cancelable && !this.#inPassiveListener) this.#canceled = true;
  }
}
for (const [name, value] of [['NONE', 0], ['CAPTURING_PHASE', 1], ['AT_TARGET', 2], ['BUBBLING_PHASE', 3]]) {
  const descriptor = {__proto__: null, value, enumerable: true};
  ObjectDefineProperty(Event, name, descriptor);
  ObjectDefineProperty(Event.prototype, name, descriptor);
}
tag(Event, 'Event');

// The options of addEventListener and removeEventListener ("flatten more").
const listenerOptions = (options) => {
  if (options === null || (typeof options !== 'object' && typeof options !== 'function')) {
    return {capture: !!options, once: false, passive: false, signal: undefined};
  }
  const capture = !!options.capture;
  const once = !!options.once;
  const passive = !!options.passive;
  const signal = options.signal;
  if (signal !== undefined && !isAbortSignal(signal)) {
    throw new TypeError_("Failed to read the 'signal' property: it is not of type 'AbortSignal'.");
  }
  return {capture, once, passive, signal};
};

class EventTarget {
  #listeners = [];

  addEventListener(type, callback, options = undefined) {
    type = `${type}`;
    if (callback !== null && callback !== undefined && typeof callback !== 'object'
        && typeof callback !== 'function') {
      throw new TypeError_("Failed to execute 'addEventListener': parameter 2 is not of type 'Object'.");
    }
    this.#add(type, callback, listenerOptions(options));
  }

  #add(type, callback, flat) {
    if (callback === null || callback === undefined) return;
    if (flat.signal !== undefined && abortSignalAborted(flat.signal)) return;
    const listeners = this.#listeners;
    for (let i = 0; i < listeners.length; i++) {
      const listener = listeners[i];
      if (listener.type === type && listener.callback === callback
          && listener.capture === flat.capture) {
        return;
      }
    }
    const listener = {
      __proto__: null, type, callback, capture: flat.capture, once: flat.once,
      passive: flat.passive, removed: false,
    };
    listeners[listeners.length] = listener;
    if (flat.signal !== undefined) {
      addAbortAlgorithm(flat.signal, () => this.#remove(listener));
    }
  }

  removeEventListener(type, callback, options = undefined) {
    type = `${type}`;
    const capture = (options !== null && typeof options === 'object') || typeof options === 'function'
      ? !!options.capture : !!options;
    this.#removeMatching(type, callback, capture);
  }

  #removeMatching(type, callback, capture) {
    const listeners = this.#listeners;
    for (let i = 0; i < listeners.length; i++) {
      const listener = listeners[i];
      if (listener.type === type && listener.callback === callback && listener.capture === capture) {
        this.#remove(listener);
        return;
      }
    }
  }

  #remove(listener) {
    listener.removed = true;
    const listeners = this.#listeners;
    for (let i = 0; i < listeners.length; i++) {
      if (listeners[i] === listener) {
        ArrayPrototypeSplice(listeners, i, 1);
        return;
      }
    }
  }

  dispatchEvent(event) {
    if (!isEvent(event)) {
      throw new TypeError_("Failed to execute 'dispatchEvent': parameter 1 is not of type 'Event'.");
    }
    return this.#dispatch(event, false);
  }

  static {
    // Fires an event the platform makes (isTrusted), as "fire an event" does.
    fireEvent = (target, type) => target.#dispatch(new Event(type), true);
    addListener = (target, type, callback) => target.#add(type, callback, {
      __proto__: null, capture: false, once: false, passive: false, signal: undefined,
    });
    removeListener = (target, type, callback) => target.#removeMatching(type, callback, false);
  }

  #dispatch(event, trusted) {
    if (eventIsDispatching(event)) {
      throw new DOMException('The event is already being dispatched.', 'InvalidStateError');
    }
    eventDispatchStart(event, this, trusted);
    const listeners = ArrayPrototypeSlice(this.#listeners);
    // At the target, capturing listeners run first, then the others.
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < listeners.length; i++) {
        const listener = listeners[i];
        if (listener.removed || listener.type !== eventType(event) || listener.capture !== (pass === 0)) {
          continue;
        }
        if (listener.once) this.#remove(listener);
        eventInPassiveListener(event, listener.passive);
        try {
          const callback = listener.callback;
          if (typeof callback === 'function') {
            ReflectApply(callback, this, [event]);
          } else {
            const handleEvent = callback.handleEvent;
            if (typeof handleEvent !== 'function') {
              throw new TypeError_("The listener's handleEvent is not a function.");
            }
            ReflectApply(handleEvent, callback, [event]);
          }
        } catch (error) {
          reportException(error);
        }
        eventInPassiveListener(event, false);
        if (eventStopsImmediately(event)) break;
      }
      if (eventStopsImmediately(event)) break;
    }
    return eventDispatchEnd(event);
  }
}
tag(EventTarget, 'EventTarget');

// An exception thrown by a listener does not stop the dispatch; it is thrown again from a
// microtask, so it ends the execution as an uncaught error, as in Node.
reportException = (error) => native.queueMicrotask(() => {
  throw error;
});

class AbortSignal extends EventTarget {
  #aborted = false;
  #reason = undefined;
  #algorithms = [];
  #dependent = false;
  #sources = [];
  #dependents = [];
  #onabort = null;
  #handlerListener = null;

  constructor(key = undefined) {
    if (key !== NOT_CONSTRUCTIBLE) throw new TypeError_('Illegal constructor');
    super();
  }

  static {
    isAbortSignal = (value) => value !== null && typeof value === 'object' && #aborted in value;
    abortSignalAborted = (signal) => signal.#aborted;
    addAbortAlgorithm = (signal, algorithm) => {
      if (!signal.#aborted) signal.#algorithms[signal.#algorithms.length] = algorithm;
    };
    newAbortSignal = () => new AbortSignal(NOT_CONSTRUCTIBLE);
    signalAbort = (signal, reason) => {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined
        ? new DOMException('This operation was aborted', 'AbortError') : reason;
      const dependents = [];
      for (let i = 0; i < signal.#dependents.length; i++) {
        const dependent = signal.#dependents[i];
        if (!dependent.#aborted) {
          dependent.#aborted = true;
          dependent.#reason = signal.#reason;
          dependents[dependents.length] = dependent;
        }
      }
      runAbortSteps(signal);
      for (let i = 0; i < dependents.length; i++) runAbortSteps(dependents[i]);
    };
    const runAbortSteps = (signal) => {
      const algorithms = signal.#algorithms;
      signal.#algorithms = [];
      for (let i = 0; i < algorithms.length; i++) algorithms[i]();
      fireEvent(signal, 'abort');
    };
    const addUnique = (list, item) => {
      for (let i = 0; i < list.length; i++) if (list[i] === item) return;
      list[list.length] = item;
    };
    // "Create a dependent abort signal".
    dependentAbortSignal = (signals) => {
      const result = newAbortSignal();
      for (let i = 0; i < signals.length; i++) {
        if (signals[i].#aborted) {
          result.#aborted = true;
          result.#reason = signals[i].#reason;
          return result;
        }
      }
      result.#dependent = true;
      for (let i = 0; i < signals.length; i++) {
        const signal = signals[i];
        if (!signal.#dependent) {
          addUnique(result.#sources, signal);
          addUnique(signal.#dependents, result);
        } else {
          for (let j = 0; j < signal.#sources.length; j++) {
            const source = signal.#sources[j];
            addUnique(result.#sources, source);
            addUnique(source.#dependents, result);
          }
        }
      }
      return result;
    };
  }

  static abort(reason = undefined) {
    const signal = newAbortSignal();
    signalAbort(signal, reason);
    return signal;
  }

  static timeout(milliseconds) {
    const delay = Number_(milliseconds);
    if (!(delay >= 0 && delay <= Number_.MAX_SAFE_INTEGER)) {
      throw new TypeError_("Failed to execute 'timeout': the delay is outside the range of an unsigned long long.");
    }
    const signal = newAbortSignal();
    native.setWeakTimeout(() => {
      signalAbort(signal, new DOMException('The operation timed out.', 'TimeoutError'));
    }, MathFloor(delay));
    return signal;
  }

  static any(signals) {
    // WebIDL's sequence<AbortSignal>: iterating the argument as the script defined it.
    if (signals === null || typeof signals !== 'object') {
      throw new TypeError_("Failed to execute 'any': the argument is not iterable.");
    }
    const list = [];
    for (const signal of signals) {
      if (!isAbortSignal(signal)) {
        throw new TypeError_("Failed to execute 'any': an element is not of type 'AbortSignal'.");
      }
      list[list.length] = signal;
    }
    return dependentAbortSignal(list);
  }

  get aborted() {
    return this.#aborted;
  }

  get reason() {
    return this.#reason;
  }

  throwIfAborted() {
    if (this.#aborted) throw this.#reason;
  }

  get onabort() {
    return this.#onabort;
  }

  set onabort(value) {
    const handler = typeof value === 'function' || (typeof value === 'object' && value !== null)
      ? value : null;
    this.#onabort = handler;
    if (handler === null) {
      if (this.#handlerListener !== null) {
        removeListener(this, 'abort', this.#handlerListener);
        this.#handlerListener = null;
      }
    } else if (this.#handlerListener === null) {
      const signal = this;
      this.#handlerListener = function (event) {
        const current = signal.#onabort;
        if (typeof current === 'function') return ReflectApply(current, this, [event]);
      };
      addListener(this, 'abort', this.#handlerListener);
    }
  }
}
tag(AbortSignal, 'AbortSignal');

class AbortController {
  #signal = newAbortSignal();

  get signal() {
    return this.#signal;
  }

  abort(reason = undefined) {
    signalAbort(this.#signal, reason);
  }
}
tag(AbortController, 'AbortController');

class Performance extends EventTarget {
  constructor(key = undefined) {
    if (key !== NOT_CONSTRUCTIBLE) throw new TypeError_('Illegal constructor');
    super();
  }

  now() {
    return native.now();
  }

  get timeOrigin() {
    return native.timeOrigin();
  }

  toJSON() {
    return {timeOrigin: native.timeOrigin()};
  }
}
tag(Performance, 'Performance');

return {
  __proto__: null, Event, EventTarget, AbortController, AbortSignal, Performance,
  performance: new Performance(NOT_CONSTRUCTIBLE),
};
