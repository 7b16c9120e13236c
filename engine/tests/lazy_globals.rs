//! The globals a runtime adds (`console`, timers, the Web APIs) are built only when a script
//! first reaches for them, from built-ins captured before it ran: what a script sees must be
//! the same as if they had been built at once.

use std::{sync::Arc, time::Duration};

use engine::{EngineSettings, Language, Limits, Script};
use serde_json::{Value, json};

fn run(source: &str) -> Value {
    let script = Script {
        name: "lazy.js".into(),
        source: Arc::from(source),
        language: Language::JavaScript,
        input: None,
    };
    let limits = Limits {
        timeout: Duration::from_secs(5),
        memory_limit: 64 << 20,
    };
    let (outcome, _log) = engine::execute(&EngineSettings::default(), script, limits).unwrap();
    let result = outcome
        .result
        .unwrap_or_else(|error| panic!("{source}: {error:?}"));
    serde_json::from_str(&result).unwrap()
}

const ADDED: [&str; 22] = [
    "console",
    "setTimeout",
    "setInterval",
    "clearTimeout",
    "clearInterval",
    "DOMException",
    "queueMicrotask",
    "Event",
    "EventTarget",
    "AbortController",
    "AbortSignal",
    "Performance",
    "performance",
    "TextEncoder",
    "TextDecoder",
    "atob",
    "btoa",
    "Crypto",
    "crypto",
    "URL",
    "URLSearchParams",
    "structuredClone",
];

#[test]
fn every_global_is_an_own_data_property_before_and_after_its_first_use() {
    let names = serde_json::to_string(&ADDED).unwrap();
    let result = run(&format!(
        r#"
        const names = {names};
        const own = Object.getOwnPropertyNames(globalThis);
        const missing = names.filter((name) => !own.includes(name));
        // Asking for a descriptor builds the value: it is a data property from the start.
        const shapes = names.map((name) => {{
          const d = Object.getOwnPropertyDescriptor(globalThis, name);
          return [name, typeof d.value, 'get' in d, d.writable, d.enumerable, d.configurable];
        }});
        ({{ missing, shapes, again: typeof URL, same: URL === globalThis.URL }})
        "#
    ));
    assert_eq!(result["missing"], json!([]));
    for shape in result["shapes"].as_array().unwrap() {
        let name = shape[0].as_str().unwrap();
        let kind = if ["console", "performance", "crypto"].contains(&name) {
            "object"
        } else {
            "function"
        };
        let enumerable = name.starts_with("set") || name.starts_with("clear");
        assert_eq!(
            shape,
            &json!([name, kind, false, true, enumerable, true]),
            "{name}"
        );
    }
    assert_eq!(result["again"], "function");
    assert_eq!(result["same"], true);
}

#[test]
fn a_global_replaced_or_deleted_before_its_first_use_stays_replaced_or_deleted() {
    let result = run(r#"
        URL = 1;
        delete TextEncoder;
        globalThis.console = 'quiet';
        Object.defineProperty(globalThis, 'setTimeout', { value: 2, writable: false });
        [URL, typeof TextEncoder, 'TextEncoder' in globalThis, console, setTimeout,
         typeof TextDecoder, new URLSearchParams('a=1').get('a')]
    "#);
    assert_eq!(
        result,
        json!([1, "undefined", false, "quiet", 2, "function", "1"])
    );
}

#[test]
fn the_web_apis_and_the_serializer_ignore_built_ins_replaced_before_their_first_use() {
    // Built-ins QuickJS makes on first access (methods, Math, JSON, Reflect) and those it
    // makes at once (getters, constructors), replaced before any Web API was touched; twice,
    // since a process's first runtime captures them otherwise than the later ones.
    for _ in 0..2 {
        assert_replaced_built_ins_are_ignored();
    }
}

fn assert_replaced_built_ins_are_ignored() {
    let result = run(r#"
        const boom = () => { throw new Error('a replaced built-in was called'); };
        const define = Object.defineProperty;
        const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype);
        define(typedArrayPrototype, 'byteLength', { get: boom });
        define(typedArrayPrototype, Symbol.toStringTag, { get: boom });
        define(ArrayBuffer.prototype, 'byteLength', { get: boom });
        Object.getPrototypeOf(new Map().entries()).next = boom;
        Object.getPrototypeOf(new Set().values()).next = boom;
        const map = new Map([[1, 'one']]);
        Map.prototype.entries = boom;
        Set.prototype.values = boom;
        String.prototype.slice = boom;
        globalThis.Math = { floor: boom };
        JSON.parse = boom;
        JSON.stringify = boom;
        globalThis.Reflect = { apply: boom, ownKeys: boom };
        Function.prototype.call = boom;
        Function.prototype.bind = boom;
        Array.prototype.push = boom;
        globalThis.TypeError = boom;
        globalThis.Uint8Array = boom;
        define(globalThis, 'Object', { value: boom });
        const bytes = new TextEncoder().encode('hé');
        const clone = structuredClone({ m: map, t: bytes });
        let thrown;
        try { new TextDecoder('utf-8', { fatal: true }).decode(new Int8Array([-1])); }
        catch (error) { thrown = error.constructor.name; }
        [bytes.length, clone.m.get(1), clone.t[2], new URL('https://a.example/x?y=1').search,
         crypto.randomUUID().length, thrown, map]
    "#);
    assert_eq!(
        result,
        json!([3, "one", 169, "?y=1", 36, "TypeError", {"[Map]": [[1, "one"]]}])
    );
}

#[test]
fn globals_first_used_inside_promise_jobs_and_timers_work() {
    let result = run(r#"
        (async () => {
          await null;
          const encoded = await new Promise((resolve) =>
            setTimeout(() => resolve(btoa('hi')), 1));
          let order = [];
          queueMicrotask(() => order.push('micro'));
          await null;
          return [encoded, order, new DOMException('m', 'AbortError').code];
        })()
    "#);
    assert_eq!(result, json!(["aGk=", ["micro"], 20]));
}

#[test]
fn the_typed_arrays_are_own_data_properties_as_the_language_defines_them_before_and_after_their_first_use()
 {
    let result = run(r#"
        const names = ['ArrayBuffer', 'SharedArrayBuffer', 'Uint8ClampedArray', 'Int8Array',
          'Uint8Array', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
          'BigInt64Array', 'BigUint64Array', 'Float16Array', 'Float32Array', 'Float64Array',
          'DataView', 'Atomics'];
        const own = Object.getOwnPropertyNames(globalThis);
        const missing = names.filter((name) => !own.includes(name));
        const shapes = names.map((name) => {
          const d = Object.getOwnPropertyDescriptor(globalThis, name);
          return [typeof d.value, 'get' in d, d.writable, d.enumerable, d.configurable];
        });
        const bytes = Uint8Array.from([1, 2, 3]);
        const view = new DataView(bytes.buffer);
        const typedArray = Object.getPrototypeOf(Int8Array);
        [missing, new Set(shapes.slice(0, 15).map(String)).size, shapes[0], shapes[15],
         view.getUint8(2), bytes.buffer instanceof ArrayBuffer, typedArray.name,
         typedArray === Object.getPrototypeOf(Float64Array), Uint8Array.fromBase64('aGk=')[1],
         Atomics.add(new Int32Array(new SharedArrayBuffer(8)), 0, 5),
         Object.prototype.toString.call(new BigInt64Array(1))]
    "#);
    assert_eq!(
        result,
        json!([
            [],
            1,
            ["function", false, true, false, true],
            ["object", false, true, false, true],
            3,
            true,
            "TypedArray",
            true,
            105,
            0,
            "[object BigInt64Array]"
        ])
    );
}

#[test]
fn the_web_apis_make_their_typed_arrays_whatever_a_script_did_to_the_typed_arrays_globals() {
    // Twice: a process's first runtime captures the typed arrays' built-ins otherwise than the
    // later ones.
    for _ in 0..2 {
        let result = run(r#"
            const boom = () => { throw new Error('a replaced built-in was called'); };
            globalThis.Uint8Array = boom;
            delete globalThis.ArrayBuffer;
            Object.defineProperty(globalThis, 'DataView', { value: 7, writable: false });
            const bytes = new TextEncoder().encode('hé');
            const uint8 = Object.getPrototypeOf(bytes);
            const clone = structuredClone(new Int16Array([-2, 3]));
            [Uint8Array === boom, typeof ArrayBuffer, DataView, bytes.length, uint8.constructor.name,
             Object.getPrototypeOf(uint8) === Object.getPrototypeOf(Int16Array.prototype),
             clone instanceof Int16Array, clone[0], btoa(new TextDecoder().decode(bytes.subarray(0, 1)))]
        "#);
        assert_eq!(
            result,
            json!([
                true,
                "undefined",
                7,
                3,
                "Uint8Array",
                true,
                true,
                -2,
                "aA=="
            ])
        );
    }
}

#[test]
fn built_ins_of_the_typed_arrays_replaced_after_a_script_made_them_change_nothing_in_the_web_apis()
{
    for _ in 0..2 {
        let result = run(r#"
            const boom = () => { throw new Error('a replaced built-in was called'); };
            const typedArray = Object.getPrototypeOf(Int8Array.prototype);
            Object.defineProperty(typedArray, 'byteLength', { get: boom });
            Object.defineProperty(typedArray, 'buffer', { get: boom });
            Object.defineProperty(typedArray, Symbol.toStringTag, { get: boom });
            typedArray.set = boom;
            Object.defineProperty(ArrayBuffer.prototype, 'byteLength', { get: boom });
            ArrayBuffer.prototype.slice = boom;
            Object.defineProperty(DataView.prototype, 'buffer', { get: boom });
            const bytes = new TextEncoder().encode('abc');
            const copy = structuredClone(new Uint8Array([9, 8]));
            [new TextDecoder().decode(bytes), crypto.getRandomValues(new Uint8Array(4)).length,
             btoa('x'), copy[1]]
        "#);
        assert_eq!(result, json!(["abc", 4, "eA==", 8]));
    }
}
