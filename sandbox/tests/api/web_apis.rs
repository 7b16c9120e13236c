//! The standard Web APIs a script sees: conformance cases adapted from web-platform-tests (WPT,
//! each test names its files), run on the real server, and hostile uses that must stay inside
//! the limits.

use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app};

/// A few assertion helpers in the style of WPT's testharness.js; failures are collected as
/// strings, so a test reads them all at once.
const HARNESS: &str = r#"
const failures = [];
const show = (value) => {
  try {
    return typeof value === 'bigint' ? `${value}n` : Object.is(value, -0) ? '-0' : JSON.stringify(value);
  } catch {
    return String(value);
  }
};
const assert_equals = (actual, expected, name) => {
  if (!(show(actual) === show(expected) && (typeof actual !== 'number' || Object.is(actual, expected)))) {
    failures.push(`${name}: got ${show(actual)}, expected ${show(expected)}`);
  }
};
const assert_true = (value, name) => assert_equals(value, true, name);
const assert_throws = (matches, fn, name) => {
  try {
    fn();
    failures.push(`${name}: did not throw`);
  } catch (error) {
    if (!matches(error)) failures.push(`${name}: threw ${error && error.name}: ${error && error.message}`);
  }
};
const dom = (name) => (error) => error instanceof DOMException && error.name === name;
const js = (Type) => (error) => error instanceof Type && error.constructor === Type;
"#;

/// Runs `body` after the harness; its last expression must be the failures (or a promise of
/// them).
async fn failures(app: &TestApp, body: &str) -> Value {
    let response = app.run(&format!("{HARNESS}\n{body}")).await;
    assert_eq!(response.body["status"], "success", "{:#}", response.body);
    response.result().clone()
}

async fn assert_conforms(body: &str) {
    let app = spawn_app().await;
    assert_eq!(
        failures(&app, &format!("{body}\nfailures")).await,
        json!([])
    );
}

async fn assert_conforms_async(body: &str) {
    let app = spawn_app().await;
    let script = format!("(async () => {{\n{body}\n}})().then(() => failures)");
    assert_eq!(failures(&app, &script).await, json!([]));
}

#[tokio::test]
async fn crypto_get_random_values_follows_webcrypto() {
    // adapted from WPT WebCryptoAPI/getRandomValues.any.js
    assert_conforms(
        r#"
        for (const Type of [Int8Array, Int16Array, Int32Array, BigInt64Array, Uint8Array,
                            Uint8ClampedArray, Uint16Array, Uint32Array, BigUint64Array]) {
          const array = new Type(8);
          assert_true(crypto.getRandomValues(array) === array, `${Type.name} returned as is`);
          const bound = new Type(65536 / Type.BYTES_PER_ELEMENT);
          assert_true(crypto.getRandomValues(bound) === bound, `${Type.name} of 65536 bytes`);
          assert_throws(dom('QuotaExceededError'),
            () => crypto.getRandomValues(new Type(65536 / Type.BYTES_PER_ELEMENT + 1)),
            `${Type.name} over 65536 bytes`);
        }
        for (const Type of [Float16Array, Float32Array, Float64Array]) {
          if (typeof Type !== 'function') continue;
          assert_throws(dom('TypeMismatchError'), () => crypto.getRandomValues(new Type(6)),
            `${Type.name}`);
        }
        assert_throws(dom('TypeMismatchError'),
          () => crypto.getRandomValues(new DataView(new ArrayBuffer(6))), 'DataView');
        assert_throws(js(TypeError), () => crypto.getRandomValues([1, 2]), 'a plain array');
        assert_equals(new DOMException('', 'QuotaExceededError').code, 22, 'legacy code');
        const bytes = crypto.getRandomValues(new Uint8Array(1024));
        assert_true(bytes.some((byte) => byte !== 0), 'the bytes are filled');
        const view = new Uint8Array(new ArrayBuffer(16), 4, 8);
        crypto.getRandomValues(view);
        assert_equals(Array.from(new Uint8Array(view.buffer, 0, 4)), [0, 0, 0, 0],
          'only the view is filled');
        "#,
    )
    .await;
}

#[tokio::test]
async fn crypto_random_uuid_is_a_fresh_v4_uuid_in_every_execution() {
    // adapted from WPT WebCryptoAPI/randomUUID.https.any.js
    let app = spawn_app().await;
    let code = format!(
        "{HARNESS}
        const seen = new Set();
        for (let i = 0; i < 100; i++) {{
          const uuid = crypto.randomUUID();
          assert_true(/^[0-9a-f]{{8}}-[0-9a-f]{{4}}-4[0-9a-f]{{3}}-[89ab][0-9a-f]{{3}}-[0-9a-f]{{12}}$/.test(uuid), uuid);
          seen.add(uuid);
        }}
        assert_equals(seen.size, 100, 'unique');
        [failures, crypto.randomUUID()]"
    );
    let first = app.run(&code).await.result().clone();
    let second = app.run(&code).await.result().clone();
    assert_eq!(first[0], json!([]));
    assert_eq!(second[0], json!([]));
    assert_ne!(first[1], second[1], "two executions drew the same UUID");
}

#[tokio::test]
async fn atob_and_btoa_follow_forgiving_base64() {
    // adapted from WPT html/webappapis/atob/base64.any.js
    assert_conforms(
        r#"
        const cases = [
          ['', []], ['abcd', [105, 183, 29]], [' abcd', [105, 183, 29]], ['abcd ', [105, 183, 29]],
          [' abcd===', null], ['abcd=== ', null], ['abcd ===', null], ['a', null], ['ab', [105]],
          ['abc', [105, 183]], ['abcde', null], ['\u{10000}', null], ['=', null], ['==', null],
          ['===', null], ['====', null], ['=====', null], ['a=', null], ['a==', null],
          ['a===', null], ['a====', null], ['ab=', null], ['ab==', [105]], ['ab===', null],
          ['abc=', [105, 183]], ['abc==', null], ['abcd=', null], ['abcd==', null],
          ['abcde===', null], ['=a', null], ['=a=', null], ['a=b', null], ['a=b=', null],
          ['ab=c', null], ['ab=c=', null], ['abc=d', null], ['abc=d=', null],
          ['ab\u000Bcd', null], ['ab\u3000cd', null], ['ab\tcd', [105, 183, 29]],
          ['ab\ncd', [105, 183, 29]], ['ab\fcd', [105, 183, 29]], ['ab\rcd', [105, 183, 29]],
          ['ab cd', [105, 183, 29]], ['ab\u00a0cd', null], ['ab\t\n\f\r cd', [105, 183, 29]],
          [' \t\n\f\r ab\t\n\f\r cd\t\n\f\r ', [105, 183, 29]],
          ['ab\t\n\f\r =\t\n\f\r =\t\n\f\r ', [105]], ['A', null], ['/A', [252]],
          ['//A', [255, 240]], ['///A', [255, 255, 192]], ['////A', null], ['/', null],
          ['A/', [3]], ['AA/', [0, 15]], ['AAAA/', null], ['AAA/', [0, 0, 63]],
          ['\u0000nonsense', null], ['abcd\u0000nonsense', null], ['YQ', [97]], ['YR', [97]],
          ['~~', null], ['..', null], ['--', null], ['__', null],
          [undefined, null], [null, [158, 233, 101]], [7, null], [12, [215]], [1.5, null],
          [true, [182, 187, 158]], [false, null], [NaN, [53, 163]],
          [Infinity, [34, 119, 226, 158, 43, 114]], [-Infinity, null], [0, null],
          [{ toString() { return 'foo'; } }, [126, 138]],
        ];
        for (const [input, output] of cases) {
          const name = `atob(${show(input)})`;
          if (output === null) {
            assert_throws(dom('InvalidCharacterError'), () => atob(input), name);
          } else {
            assert_equals(Array.from(atob(input), (c) => c.charCodeAt(0)), output, name);
          }
        }
        let all = '';
        for (let i = 0; i < 256; i++) all += String.fromCharCode(i);
        assert_equals(atob(btoa(all)), all, 'btoa of every Latin-1 character round-trips');
        assert_equals(btoa(''), '', 'btoa of nothing');
        assert_equals(btoa('\xff'), '/w==', 'btoa pads');
        assert_equals(btoa(null), 'bnVsbA==', 'btoa(null)');
        assert_throws(dom('InvalidCharacterError'), () => btoa('\u0100'), 'btoa above Latin-1');
        assert_throws(dom('InvalidCharacterError'), () => btoa('\uD800'), 'btoa of a surrogate');
        assert_throws(js(TypeError), () => atob(), 'atob needs an argument');
        try { atob('*'); } catch (error) {
          assert_equals([error.name, error.code, error instanceof Error], ['InvalidCharacterError', 5, true],
            'the error is a DOMException');
        }
        "#,
    )
    .await;
}

#[tokio::test]
async fn atob_errors_reach_the_response_with_their_spec_name() {
    let app = spawn_app().await;
    let response = app.run("atob('a')").await;
    assert_eq!(response.body["error"]["name"], "InvalidCharacterError");
}

#[tokio::test]
async fn performance_now_counts_from_the_start_in_steps_of_a_tenth_of_a_millisecond() {
    // adapted from WPT hr-time/basic.any.js and hr-time/monotonic-clock.any.js
    assert_conforms(
        r#"
        assert_equals(typeof performance.now(), 'number', 'now() is a number');
        const first = performance.now();
        assert_true(first >= 0 && first < 1000, 'measured from the start of the execution');
        let last = first;
        const start = Date.now();
        while (Date.now() - start < 5) {
          const now = performance.now();
          if (now < last) failures.push(`not monotonic: ${now} after ${last}`);
          const tenths = now * 10;
          if (Math.abs(tenths - Math.round(tenths)) > 1e-6) failures.push(`not coarsened: ${now}`);
          last = now;
        }
        assert_true(last > first, 'time passes');
        assert_true(Math.abs(performance.timeOrigin - Date.now()) < 10000, 'timeOrigin is wall time');
        assert_equals(Object.prototype.toString.call(performance), '[object Performance]', 'tag');
        "#,
    )
    .await;
}

#[tokio::test]
async fn queue_microtask_runs_callbacks_in_order_with_promise_jobs() {
    // adapted from WPT html/webappapis/microtask-queuing/queue-microtask.any.js
    assert_conforms_async(
        r#"
        assert_equals(typeof queueMicrotask, 'function', 'it exists');
        for (const value of [undefined, null, 0, {}, '']) {
          assert_throws(js(TypeError), () => queueMicrotask(value), `queueMicrotask(${show(value)})`);
        }
        const order = [];
        Promise.resolve().then(() => order.push(1));
        queueMicrotask(function () { 'use strict'; order.push(2, arguments.length, this); });
        Promise.resolve().then(() => order.push(3));
        order.push(0);
        await null;
        await null;
        assert_equals(order, [0, 1, 2, 0, undefined, 3], 'interleaves with promises, no arguments');
        "#,
    )
    .await;
}

#[tokio::test]
async fn an_exception_in_a_microtask_is_reported_as_the_execution_error() {
    // adapted from WPT html/webappapis/microtask-queuing/queue-microtask-exceptions.any.js
    let app = spawn_app().await;
    let response = app
        .run("queueMicrotask(() => { throw new RangeError('from a microtask'); }); 1")
        .await;
    assert_eq!(response.body["error"]["name"], "RangeError");
    assert_eq!(response.body["error"]["message"], "from a microtask");
}

#[tokio::test]
async fn text_encoder_writes_utf8_with_lone_surrogates_replaced() {
    // adapted from WPT encoding/textencoder-utf16-surrogates.any.js, encoding/api-basics.any.js
    // and encoding/encodeInto.any.js
    assert_conforms(
        r#"
        const encoder = new TextEncoder();
        assert_equals(encoder.encoding, 'utf-8', 'encoding');
        for (const [input, expected, name] of [
          ['\uD834', [0xEF, 0xBF, 0xBD], 'Sanity check'],
          ['\uDC00', [0xEF, 0xBF, 0xBD], 'Surrogate half (low)'],
          ['abc123\uD834', [0x61, 0x62, 0x63, 0x31, 0x32, 0x33, 0xEF, 0xBF, 0xBD], 'Surrogate half (high)'],
          ['\uD834\u0000', [0xEF, 0xBF, 0xBD, 0x00], 'Unmatched lead'],
          ['\uDD1E\uD834', [0xEF, 0xBF, 0xBD, 0xEF, 0xBF, 0xBD], 'Swapped surrogate pair'],
          ['\uD834\uDD1E', [0xF0, 0x9D, 0x84, 0x9E], 'Properly encoded MUSICAL SYMBOL G CLEF'],
          ['z\xA2\u6C34\uD834\uDD1E\uDBFF\uDFFD', [0x7A, 0xC2, 0xA2, 0xE6, 0xB0, 0xB4, 0xF0, 0x9D,
            0x84, 0x9E, 0xF4, 0x8F, 0xBF, 0xBD], 'api-basics sample'],
        ]) {
          assert_equals(Array.from(encoder.encode(input)), expected, name);
        }
        assert_equals(encoder.encode().length, 0, 'encode() with no input');
        assert_equals(encoder.encode(undefined).length, 0, 'encode(undefined)');
        assert_true(encoder.encode('a') instanceof Uint8Array, 'a Uint8Array');

        for (const { input, read, destinationLength, written } of [
          { input: 'Hi', read: 0, destinationLength: 0, written: [] },
          { input: 'A', read: 1, destinationLength: 10, written: [0x41] },
          { input: '\u{1D306}', read: 2, destinationLength: 4, written: [0xF0, 0x9D, 0x8C, 0x86] },
          { input: '\u{1D306}A', read: 0, destinationLength: 3, written: [] },
          { input: '\uD834A\u{1D306}A\u{1D306}', read: 4, destinationLength: 8,
            written: [0xEF, 0xBF, 0xBD, 0x41, 0xF0, 0x9D, 0x8C, 0x86] },
          { input: 'A\uDF06', read: 2, destinationLength: 4, written: [0x41, 0xEF, 0xBF, 0xBD] },
          { input: '\u00A5\u00A5', read: 2, destinationLength: 4, written: [0xC2, 0xA5, 0xC2, 0xA5] },
        ]) {
          for (const offset of [0, 4]) {
            const buffer = new ArrayBuffer(destinationLength + offset + 4);
            const view = new Uint8Array(buffer, offset, destinationLength);
            new Uint8Array(buffer).fill(0x80);
            const result = encoder.encodeInto(input, view);
            const name = `encodeInto ${show(input)} at ${offset}`;
            assert_equals([result.read, result.written], [read, written.length], name);
            assert_equals(Array.from(view.subarray(0, written.length)), written, name);
            assert_equals(new Uint8Array(buffer)[offset + written.length] ?? 0x80, 0x80,
              `${name} writes no further`);
          }
        }
        for (const destination of [new Uint16Array(4), new DataView(new ArrayBuffer(4)), new ArrayBuffer(4), [0]]) {
          assert_throws(js(TypeError), () => encoder.encodeInto('a', destination),
            `encodeInto ${Object.prototype.toString.call(destination)}`);
        }
        const detached = new ArrayBuffer(8);
        const detachedView = new Uint8Array(detached);
        detached.transfer();
        const result = encoder.encodeInto('abc', detachedView);
        assert_equals([result.read, result.written], [0, 0], 'encodeInto a detached buffer');
        "#,
    )
    .await;
}

#[tokio::test]
async fn text_decoder_replaces_or_rejects_invalid_utf8_and_streams() {
    // adapted from WPT encoding/textdecoder-fatal.any.js, encoding/textdecoder-ignorebom.any.js,
    // encoding/textdecoder-streaming.any.js, encoding/textdecoder-labels.any.js,
    // encoding/api-invalid-label.any.js and encoding/api-replacement-encodings.any.js
    assert_conforms(
        r#"
        const bad = [
          [0xFF], [0xC0], [0xE0], [0xC0, 0x00], [0xC0, 0xC0], [0xE0, 0x00], [0xE0, 0xC0],
          [0xE0, 0x80, 0x00], [0xE0, 0x80, 0xC0], [0xFC, 0x80, 0x80, 0x80, 0x80, 0x80],
          [0xFE, 0x80, 0x80, 0x80, 0x80, 0x80], [0xC0, 0x80], [0xE0, 0x80, 0x80],
          [0xF0, 0x80, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xED, 0xB0, 0x80],
          [0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80],
        ];
        for (const bytes of bad) {
          assert_throws(js(TypeError),
            () => new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes)),
            `fatal ${show(bytes)}`);
        }
        assert_equals(new TextDecoder('utf-8').fatal, false, 'fatal defaults to false');
        assert_equals(new TextDecoder('utf-8', { fatal: true }).fatal, true, 'fatal attribute');

        const utf16 = new TextDecoder('utf-16le', { fatal: true });
        const odd = new Uint8Array([0x00]);
        const even = new Uint8Array([0x00, 0x00]);
        assert_equals(utf16.decode(odd, { stream: true }), '', 'odd byte streamed');
        assert_equals(utf16.decode(odd), '\u0000', 'odd bytes completed');
        assert_throws(js(TypeError), () => { utf16.decode(even, { stream: true }); utf16.decode(odd); },
          'an odd end is fatal');
        assert_throws(js(TypeError), () => { utf16.decode(odd, { stream: true }); utf16.decode(even); },
          'an odd end is fatal 2');
        assert_equals(utf16.decode(even), '\u0000', 'an error does not prevent later decodes');

        // WHATWG's replacement: one U+FFFD per maximal subpart of an ill-formed sequence.
        const replaced = new TextDecoder().decode(new Uint8Array([
          0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64, 0xED, 0xA0, 0x80,
        ]));
        assert_equals(replaced, 'a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd\uFFFD\uFFFD\uFFFD',
          'replacement of ill-formed sequences');

        const BOM = '\uFEFF';
        for (const [encoding, bytes] of [
          ['utf-8', [0xEF, 0xBB, 0xBF, 0x61, 0x62, 0x63]],
          ['utf-16le', [0xFF, 0xFE, 0x61, 0x00, 0x62, 0x00, 0x63, 0x00]],
          ['utf-16be', [0xFE, 0xFF, 0x00, 0x61, 0x00, 0x62, 0x00, 0x63]],
        ]) {
          const array = new Uint8Array(bytes);
          const keeping = new TextDecoder(encoding, { ignoreBOM: true });
          assert_equals(keeping.decode(array), `${BOM}abc`, `${encoding} BOM kept`);
          assert_equals(keeping.decode(array), `${BOM}abc`, `${encoding} BOM kept again`);
          const removing = new TextDecoder(encoding, { ignoreBOM: false });
          assert_equals(removing.decode(array), 'abc', `${encoding} BOM removed`);
          assert_equals(removing.decode(array), 'abc', `${encoding} BOM removed again`);
          assert_equals(new TextDecoder(encoding).decode(array), 'abc', `${encoding} BOM removed by default`);
        }
        assert_equals(new TextDecoder('utf-8', { ignoreBOM: true }).ignoreBOM, true, 'ignoreBOM attribute');
        assert_equals(new TextDecoder('utf-8').ignoreBOM, false, 'ignoreBOM defaults to false');

        const string = '\x00123ABCabc\x80\xFF\u0100\u1000\uFFFD\uD800\uDC00\uDBFF\uDFFF';
        const octets = Array.from(new TextEncoder().encode(string));
        for (let length = 1; length <= 5; length++) {
          for (const View of [Uint8Array, DataView]) {
            const decoder = new TextDecoder();
            let out = '';
            for (let i = 0; i < octets.length; i += length) {
              const buffer = new Uint8Array(octets.slice(i, i + length)).buffer;
              out += decoder.decode(new View(buffer), { stream: true });
            }
            out += decoder.decode();
            assert_equals(out, string, `streaming in chunks of ${length} as ${View.name}`);
          }
        }
        const decoder = new TextDecoder();
        assert_equals(decoder.decode(new Uint8Array([0xEF, 0xBB]), { stream: true }), '', 'a split BOM');
        assert_equals(decoder.decode(new Uint8Array([0xBF, 0x41])), 'A', 'a split BOM is removed');
        assert_equals(decoder.decode(new Uint8Array([0xF0, 0x9F]), { stream: true }), '', 'half a character');
        assert_equals(decoder.decode(), '\uFFFD', 'an unfinished character at the end');
        assert_equals(new TextDecoder().decode(new Uint8Array([0x61]).buffer), 'a', 'an ArrayBuffer');
        assert_equals(new TextDecoder().decode(), '', 'decode() with no input');

        for (const label of ['utf-8', 'UTF-8', ' utf8 ', '\tunicode-1-1-utf-8\n', 'unicode11utf8',
                             'unicode20utf8', 'x-unicode20utf8']) {
          assert_equals(new TextDecoder(label).encoding, 'utf-8', `label ${show(label)}`);
        }
        assert_equals(new TextDecoder('latin1').encoding, 'windows-1252', 'a legacy label');
        for (const label of ['invalid-invalidLabel', 'utf-7', '\u00A0utf-8', 'replacement', 'iso-2022-kr']) {
          assert_throws(js(RangeError), () => new TextDecoder(label), `label ${show(label)} is refused`);
        }
        assert_throws(js(TypeError), () => new TextDecoder().decode([1, 2]), 'a plain array');
        "#,
    )
    .await;
}

#[tokio::test]
async fn structured_clone_copies_every_cloneable_kind_and_keeps_cycles() {
    // adapted from WPT html/webappapis/structured-clone/structured-clone-battery-of-tests.js
    // (through structured-clone.any.js)
    assert_conforms(
        r#"
        for (const value of [undefined, null, true, false, 0, -0, NaN, Infinity, -Infinity, 1.5,
                             12345678901234567890n, -1n, '', 'a\uD800b', '\u{1F600}']) {
          const copy = structuredClone(value);
          assert_true(Object.is(copy, value), `primitive ${show(value)}`);
        }
        for (const [value, Type, valueOf] of [
          [new Boolean(false), Boolean, false], [new Number(-0), Number, -0],
          [new String('abc'), String, 'abc'], [Object(5n), BigInt, 5n],
        ]) {
          const copy = structuredClone(value);
          assert_true(copy !== value && typeof copy === 'object', `${Type.name} object is copied`);
          assert_true(Object.is(copy.valueOf(), valueOf), `${Type.name} object keeps its value`);
          assert_true(Object.getPrototypeOf(copy) === Type.prototype, `${Type.name} prototype`);
        }
        const date = new Date(1e12);
        assert_equals(structuredClone(date).getTime(), 1e12, 'Date');
        assert_true(structuredClone(new Date(NaN)) instanceof Date, 'invalid Date');
        const regexp = /abc/gimsuy;
        regexp.lastIndex = 3;
        const regexpCopy = structuredClone(regexp);
        assert_equals([regexpCopy.source, regexpCopy.flags, regexpCopy.lastIndex], ['abc', 'gimsuy', 0],
          'RegExp: source and flags kept, lastIndex reset');
        const buffer = new Uint8Array([1, 2, 3, 4]).buffer;
        const bufferCopy = structuredClone(buffer);
        assert_true(bufferCopy !== buffer && bufferCopy instanceof ArrayBuffer, 'ArrayBuffer copied');
        assert_equals(Array.from(new Uint8Array(bufferCopy)), [1, 2, 3, 4], 'ArrayBuffer bytes');
        for (const Type of [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array,
                            Int32Array, Uint32Array, Float32Array, Float64Array]) {
          const view = new Type(new ArrayBuffer(32), 8, 2);
          view[0] = 1; view[1] = 2;
          const copy = structuredClone(view);
          assert_equals([copy.constructor.name, copy.byteOffset, copy.length, copy[0], copy[1],
                         copy.buffer.byteLength], [Type.name, 8, 2, 1, 2, 32], `${Type.name}`);
        }
        const big = structuredClone(new BigInt64Array([-1n, 2n]));
        assert_equals([big[0], big[1]], [-1n, 2n], 'BigInt64Array');
        const dataView = structuredClone(new DataView(new ArrayBuffer(8), 2, 4));
        assert_equals([dataView.constructor.name, dataView.byteOffset, dataView.byteLength],
          ['DataView', 2, 4], 'DataView');
        const shared = new ArrayBuffer(8);
        const pair = structuredClone([new Uint8Array(shared), new Uint16Array(shared)]);
        assert_true(pair[0].buffer === pair[1].buffer, 'views of one buffer share the copy');

        const map = structuredClone(new Map([[1, { a: 1 }], [{ k: 1 }, 'v']]));
        assert_equals([...map.entries()], [[1, { a: 1 }], [{ k: 1 }, 'v']], 'Map');
        const set = structuredClone(new Set([1, 'two', { three: 3 }]));
        assert_equals([...set], [1, 'two', { three: 3 }], 'Set');

        for (const Type of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError]) {
          const copy = structuredClone(new Type('message'));
          assert_equals([Object.getPrototypeOf(copy) === Type.prototype, copy.name, copy.message,
                         Object.prototype.hasOwnProperty.call(copy, 'message')],
            [true, Type.name, 'message', true], `${Type.name}`);
        }
        const custom = new Error('custom');
        custom.name = 'CustomError';
        assert_equals(Object.getPrototypeOf(structuredClone(custom)) === Error.prototype, true,
          'an unknown error name becomes Error');
        assert_true(!Object.prototype.hasOwnProperty.call(structuredClone(new Error()), 'message'),
          'an error without a message');
        assert_equals(structuredClone(new Error('outer', { cause: new TypeError('inner') })).cause.message,
          'inner', 'an error cause');

        const sparse = [1, , 3];
        sparse.extra = 'x';
        const sparseCopy = structuredClone(sparse);
        assert_equals([sparseCopy.length, 1 in sparseCopy, sparseCopy[2], sparseCopy.extra],
          [3, false, 3, 'x'], 'a sparse array with an extra property');
        class Point { constructor() { this.x = 1; } get y() { return 2; } }
        const point = structuredClone(new Point());
        assert_equals([Object.getPrototypeOf(point) === Object.prototype, point.x, point.y],
          [true, 1, undefined], 'a class instance becomes a plain object of its own properties');
        const hidden = Object.defineProperty({ shown: 1 }, 'hidden', { value: 2, enumerable: false });
        assert_equals(structuredClone(hidden), { shown: 1 }, 'only enumerable properties');
        const withSymbolKey = { [Symbol('s')]: 1, a: 2 };
        assert_equals(Object.getOwnPropertySymbols(structuredClone(withSymbolKey)).length, 0,
          'symbol keys are skipped');
        const protoKey = JSON.parse('{"__proto__": {"polluted": true}}');
        const protoCopy = structuredClone(protoKey);
        assert_equals([Object.getPrototypeOf(protoCopy) === Object.prototype,
                       Object.prototype.hasOwnProperty.call(protoCopy, '__proto__'), ({}).polluted],
          [true, true, undefined], 'a __proto__ key stays data');

        const cycle = { name: 'root', list: [] };
        cycle.self = cycle;
        cycle.list.push(cycle, cycle.list);
        const cycleCopy = structuredClone(cycle);
        assert_true(cycleCopy !== cycle && cycleCopy.self === cycleCopy, 'a self reference');
        assert_true(cycleCopy.list[0] === cycleCopy && cycleCopy.list[1] === cycleCopy.list,
          'references inside an array');
        const shape = { x: 1 };
        const twice = structuredClone([shape, shape]);
        assert_true(twice[0] === twice[1], 'one object referenced twice stays one');
        const loopMap = new Map();
        loopMap.set(loopMap, loopMap);
        const loopMapCopy = structuredClone(loopMap);
        assert_true(loopMapCopy.get(loopMapCopy) === loopMapCopy, 'a Map containing itself');

        for (const [value, name] of [
          [Symbol('s'), 'a symbol'], [() => 1, 'a function'], [{ f() {} }, 'a method inside'],
          [Object(Symbol('s')), 'a Symbol object'], [new WeakMap(), 'a WeakMap'],
          [new WeakSet(), 'a WeakSet'], [Promise.resolve(), 'a promise'],
          [new Proxy({}, {}), 'a proxy'], [new SharedArrayBuffer(4), 'a SharedArrayBuffer'],
          [(function* () {})(), 'a generator'],
        ]) {
          assert_throws(dom('DataCloneError'), () => structuredClone(value), name);
        }
        const detached = new ArrayBuffer(4);
        detached.transfer();
        assert_throws(dom('DataCloneError'), () => structuredClone(detached), 'a detached buffer');
        assert_throws((error) => error === 'thrown',
          () => structuredClone({ get boom() { throw 'thrown'; } }), 'a throwing getter');
        assert_throws(js(TypeError), () => structuredClone(), 'no argument');
        assert_equals(structuredClone(1, { transfer: [] }), 1, 'an empty transfer list');
        assert_equals(new DOMException('', 'DataCloneError').code, 25, 'legacy code');
        "#,
    )
    .await;
}

#[tokio::test]
async fn events_dispatch_to_listeners_as_the_dom_standard_says() {
    // adapted from WPT dom/events/Event-constructors.any.js, dom/events/EventTarget-dispatchEvent.html,
    // dom/events/AddEventListenerOptions-once.any.js, dom/events/AddEventListenerOptions-passive.any.js,
    // dom/events/EventListener-handleEvent.html and dom/events/EventTarget-removeEventListener.any.js
    assert_conforms(
        r#"
        assert_throws(js(TypeError), () => new Event(), 'an event needs a type');
        const event = new Event('test');
        assert_equals([event.type, event.bubbles, event.cancelable, event.isTrusted, event.target,
                       event.currentTarget, event.eventPhase, event.defaultPrevented,
                       typeof event.timeStamp, Event.AT_TARGET],
          ['test', false, false, false, null, null, Event.NONE, false, 'number', 2], 'a new event');
        const init = new Event('x', { bubbles: true, cancelable: true });
        assert_equals([init.bubbles, init.cancelable], [true, true], 'the init dictionary');

        const target = new EventTarget();
        const calls = [];
        const listener = function (e) { calls.push(['fn', this === target, e.currentTarget === target, e.eventPhase]); };
        target.addEventListener('ping', listener);
        target.addEventListener('ping', listener);
        target.addEventListener('ping', { handleEvent(e) { calls.push(['object', this !== target]); } });
        target.addEventListener('ping', () => calls.push(['capture']), { capture: true });
        target.addEventListener('ping', () => calls.push(['once']), { once: true });
        target.addEventListener('pong', () => calls.push(['other type']));
        assert_equals(target.dispatchEvent(new Event('ping')), true, 'dispatch returns true');
        assert_equals(calls, [['capture'], ['fn', true, true, 2], ['object', true], ['once']],
          'listeners run once each, capturing first, in order');
        calls.length = 0;
        target.removeEventListener('ping', listener);
        target.dispatchEvent(new Event('ping'));
        assert_equals(calls, [['object', true], ['capture']].reverse(), 'removed and once listeners do not run');

        const cancelable = new Event('c', { cancelable: true });
        target.addEventListener('c', (e) => e.preventDefault());
        assert_equals(target.dispatchEvent(cancelable), false, 'a canceled event');
        assert_equals(cancelable.defaultPrevented, true, 'defaultPrevented');
        const passive = new Event('p', { cancelable: true });
        target.addEventListener('p', (e) => e.preventDefault(), { passive: true });
        assert_equals(target.dispatchEvent(passive), true, 'a passive listener cannot cancel');

        const stopped = [];
        target.addEventListener('s', (e) => { stopped.push(1); e.stopImmediatePropagation(); });
        target.addEventListener('s', () => stopped.push(2));
        target.dispatchEvent(new Event('s'));
        assert_equals(stopped, [1], 'stopImmediatePropagation');

        const reentrant = new Event('r');
        target.addEventListener('r', (e) => {
          assert_throws(dom('InvalidStateError'), () => target.dispatchEvent(e), 'dispatching twice at once');
        });
        target.dispatchEvent(reentrant);
        assert_equals([reentrant.eventPhase, reentrant.currentTarget, reentrant.target === target],
          [0, null, true], 'after dispatch');
        assert_throws(js(TypeError), () => target.dispatchEvent({ type: 'fake' }), 'not an Event');
        assert_equals(Object.prototype.toString.call(target), '[object EventTarget]', 'tag');
        "#,
    )
    .await;
}

#[tokio::test]
async fn abort_controller_and_signals_follow_the_dom_standard() {
    // adapted from WPT dom/abort/event.any.js, dom/abort/abort-signal-any.any.js (through
    // dom/abort/resources/abort-signal-any-tests.js) and dom/abort/AbortSignal.any.js
    assert_conforms_async(
        r#"
        const controller = new AbortController();
        const signal = controller.signal;
        assert_true(controller.signal === signal, 'the same signal every time');
        assert_equals([signal.aborted, signal.reason], [false, undefined], 'not aborted yet');
        signal.throwIfAborted();
        let count = 0;
        let seen = null;
        signal.onabort = (e) => { count++; seen = e; };
        signal.addEventListener('abort', () => count++);
        controller.abort();
        assert_equals(count, 2, 'abort fires the event synchronously to both listeners');
        assert_equals([seen.type, seen.isTrusted, seen.target === signal], ['abort', true, true],
          'the abort event');
        controller.abort();
        assert_equals(count, 2, 'a second abort does nothing');
        assert_true(signal.reason instanceof DOMException, 'the default reason is a DOMException');
        assert_equals([signal.reason.name, signal.reason.code], ['AbortError', 20], 'AbortError');
        assert_throws((error) => error === signal.reason, () => signal.throwIfAborted(), 'throwIfAborted');
        let late = false;
        signal.addEventListener('abort', () => { late = true; });
        assert_equals(late, false, 'a listener added after abort is not called');

        const withReason = new AbortController();
        withReason.abort('my reason');
        assert_equals(withReason.signal.reason, 'my reason', 'abort(reason)');
        const withNull = new AbortController();
        withNull.abort(null);
        assert_equals(withNull.signal.reason, null, 'abort(null)');
        const withUndefined = new AbortController();
        withUndefined.abort(undefined);
        assert_equals(withUndefined.signal.reason.name, 'AbortError', 'abort(undefined)');
        const aborted = AbortSignal.abort();
        assert_equals([aborted.aborted, aborted.reason.name], [true, 'AbortError'], 'AbortSignal.abort()');
        assert_equals(AbortSignal.abort('why').reason, 'why', 'AbortSignal.abort(reason)');
        assert_throws(js(TypeError), () => new AbortSignal(), 'AbortSignal is not constructible');

        const onlySignal = new AbortController();
        const followed = AbortSignal.any([onlySignal.signal]);
        assert_equals(followed.aborted, false, 'any() of one signal');
        onlySignal.abort('first');
        assert_equals([followed.aborted, followed.reason], [true, 'first'], 'any() follows its signal');
        assert_equals(AbortSignal.any([]).aborted, false, 'any() of nothing');
        const already = AbortSignal.any([new AbortController().signal, AbortSignal.abort('early')]);
        assert_equals([already.aborted, already.reason], [true, 'early'], 'any() of an aborted signal');

        const root = new AbortController();
        const middle = AbortSignal.any([root.signal]);
        const leaf = AbortSignal.any([middle]);
        const order = [];
        root.signal.addEventListener('abort', () => order.push(0));
        middle.addEventListener('abort', () => order.push(1));
        leaf.addEventListener('abort', () => {
          order.push(2);
          assert_equals([middle.aborted, leaf.aborted], [true, true], 'dependents are marked before events fire');
        });
        root.abort('root');
        assert_equals(order, [0, 1, 2], 'abort events fire in order');
        assert_equals(leaf.reason, 'root', 'intermediate signals');
        assert_throws(js(TypeError), () => AbortSignal.any([{}]), 'any() of a non-signal');

        const target = new EventTarget();
        const removable = new AbortController();
        let heard = 0;
        target.addEventListener('x', () => heard++, { signal: removable.signal });
        target.dispatchEvent(new Event('x'));
        removable.abort();
        target.dispatchEvent(new Event('x'));
        assert_equals(heard, 1, 'addEventListener signal removes the listener');

        // A timeout signal does not keep the execution running (as in Node): a timer does.
        const keepAlive = setTimeout(() => {}, 2000);
        const timeout = AbortSignal.timeout(5);
        assert_equals(timeout.aborted, false, 'AbortSignal.timeout() starts unaborted');
        const reason = await new Promise((resolve) => { timeout.onabort = () => resolve(timeout.reason); });
        assert_equals([reason instanceof DOMException, reason.name, reason.code], [true, 'TimeoutError', 23],
          'AbortSignal.timeout() times out');
        const anyTimeout = AbortSignal.any([AbortSignal.timeout(1)]);
        await new Promise((resolve) => anyTimeout.addEventListener('abort', resolve));
        assert_equals(anyTimeout.reason.name, 'TimeoutError', 'any() of a timeout signal');
        assert_throws(js(TypeError), () => AbortSignal.timeout(-1), 'a negative timeout');
        clearTimeout(keepAlive);
        "#,
    )
    .await;
}

#[tokio::test]
async fn a_pending_abort_signal_timeout_does_not_keep_the_execution_running() {
    let app = spawn_app().await;
    let response = app
        .run_with_timeout("const s = AbortSignal.timeout(60000); s.aborted", 1000)
        .await;
    assert_eq!(response.result(), &json!(false));
}

#[tokio::test]
async fn url_parses_and_sets_components_as_the_url_standard_says() {
    // adapted from WPT url/url-constructor.any.js (cases of url/resources/urltestdata.json),
    // url/url-setters.any.js (url/resources/setters_tests.json), url/url-statics-canparse.any.js,
    // url/url-statics-parse.any.js, url/url-tojson.any.js and url/url-origin.any.js
    assert_conforms(
        r##"
        const parsed = [
          ['http://example\t.\norg', 'http://example.org/foo/bar', 'http://example.org/'],
          ['  :foo.com   \n', 'http://example.org/foo/bar', 'http://example.org/foo/:foo.com'],
          ['http://f:21/ b ? d # e ', undefined, 'http://f:21/%20b%20?%20d%20#%20e'],
          ['http://[1:0::]', undefined, 'http://[1::]/'],
          ['http://www.google.com/foo?bar=baz#', undefined, 'http://www.google.com/foo?bar=baz#'],
          ['https://faß.ExAmPlE/', undefined, 'https://xn--fa-hia.example/'],
          ['http://192.168.0.257', undefined, null],
          ['http://0x7f.1/', undefined, 'http://127.0.0.1/'],
          ['//x/y', 'https://b/', 'https://x/y'],
          ['../c?d', 'http://a/b/e/f', 'http://a/b/c?d'],
          ['non-spec:/.//p', undefined, 'non-spec:/.//p'],
          ['a:\t foo.com', 'http://example.org/foo/bar', 'a: foo.com'],
          ['http://f:999999/c', 'http://example.org/foo/bar', null],
          ['http://GOO\u00a0\u3000goo.com', undefined, null],
          ['http://user:pass@host:8080/p?q#h', undefined, 'http://user:pass@host:8080/p?q#h'],
          ['file:///C:/a/../b', undefined, 'file:///C:/b'],
          ['', undefined, null],
          ['x', undefined, null],
        ];
        for (const [input, base, href] of parsed) {
          const name = `new URL(${show(input)}, ${show(base)})`;
          if (href === null) {
            assert_throws(js(TypeError), () => new URL(input, base), name);
          } else {
            assert_equals(new URL(input, base).href, href, name);
          }
        }
        const url = new URL('https://user:pass@example.org:8443/a/b?c=d#e');
        assert_equals([url.origin, url.protocol, url.username, url.password, url.host, url.hostname,
                       url.port, url.pathname, url.search, url.hash],
          ['https://example.org:8443', 'https:', 'user', 'pass', 'example.org:8443', 'example.org',
           '8443', '/a/b', '?c=d', '#e'], 'the getters');
        assert_equals(new URL('blob:https://example.org/uuid').origin, 'https://example.org', 'a blob origin');
        assert_equals(new URL('data:text/plain,x').origin, 'null', 'an opaque origin');

        const setters = [
          ['protocol', 'a://example.net', 'b', 'b://example.net'],
          ['protocol', 'https://example.net', 'foo', 'https://example.net/'],
          ['protocol', 'http://example.net', 'https:', 'https://example.net/'],
          ['username', 'http://example.net', 'me', 'http://me@example.net/'],
          ['username', 'http://example.net', '\u0000\u0001\t\n\r\u001f !"#$%&\'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\u007f\u0080\u0081\u00c9\u00e9',
           'http://%00%01%09%0A%0D%1F%20!%22%23$%&\'()*+,-.%2F09%3A%3B%3C%3D%3E%3F%40AZ%5B%5C%5D%5E_%60az%7B%7C%7D~%7F%C2%80%C2%81%C3%89%C3%A9@example.net/'],
          ['password', 'http://me@example.net', 'secret', 'http://me:secret@example.net/'],
          ['host', 'http://example.net', 'example.com:8080', 'http://example.com:8080/'],
          ['host', 'http://example.net:8080', 'example.com', 'http://example.com:8080/'],
          ['hostname', 'http://example.net:8080', 'example.com:9000', 'http://example.net:8080/'],
          ['port', 'http://example.net:8080', '', 'http://example.net/'],
          ['port', 'http://example.net', '80', 'http://example.net/'],
          ['port', 'http://example.net', '8080stuff', 'http://example.net:8080/'],
          ['port', 'http://example.net:8080', '65536', 'http://example.net:8080/'],
          ['pathname', 'http://example.net/home?lang=fr#nav', '\\a\\%2E\\b\\%2e.\\c', 'http://example.net/a/c?lang=fr#nav'],
          ['pathname', 'http://example.net', ' ', 'http://example.net/%20'],
          ['search', 'https://example.net#nav', 'lang=fr', 'https://example.net/?lang=fr#nav'],
          ['search', 'https://example.net?lang=en-US#nav', '', 'https://example.net/#nav'],
          ['hash', 'https://example.net', 'main', 'https://example.net/#main'],
          ['hash', 'https://example.net#nav', '', 'https://example.net/'],
          ['href', 'https://example.net', 'http://other/x', 'http://other/x'],
        ];
        for (const [setter, href, value, expected] of setters) {
          const target = new URL(href);
          target[setter] = value;
          assert_equals(target.href, expected, `${setter} = ${show(value)} on ${href}`);
        }
        assert_throws(js(TypeError), () => { new URL('http://a').href = 'not a url'; }, 'a bad href');

        for (const [input, base, expected] of [
          [undefined, undefined, false], ['a:b', undefined, true], [undefined, 'a:b', false],
          ['a:b', 'a:b', true], ['https://test:test', undefined, false], ['a', 'https://b/', true],
        ]) {
          assert_equals(URL.canParse(input, base), expected, `canParse(${show(input)}, ${show(base)})`);
          const result = URL.parse(input, base);
          assert_equals(result === null ? null : result instanceof URL, expected ? true : null,
            `parse(${show(input)}, ${show(base)})`);
        }
        assert_equals(JSON.stringify(new URL('https://example.com/')), '"https://example.com/"', 'toJSON');
        assert_equals(String(new URL('https://example.com/x')), 'https://example.com/x', 'toString');
        assert_throws(js(TypeError), () => new URL(), 'no argument');
        "##,
    )
    .await;
}

#[tokio::test]
async fn url_search_params_parse_serialize_and_stay_in_sync_with_their_url() {
    // adapted from WPT url/urlsearchparams-constructor.any.js, url/urlsearchparams-append.any.js,
    // url/urlsearchparams-delete.any.js, url/urlsearchparams-get.any.js,
    // url/urlsearchparams-getall.any.js, url/urlsearchparams-has.any.js,
    // url/urlsearchparams-set.any.js, url/urlsearchparams-sort.any.js,
    // url/urlsearchparams-stringifier.any.js, url/urlsearchparams-foreach.any.js,
    // url/urlsearchparams-size.any.js and url/url-searchparams.any.js
    assert_conforms(
        r#"
        assert_equals(new URLSearchParams().toString(), '', 'empty');
        assert_equals(new URLSearchParams('?a=b').toString(), 'a=b', 'a leading ? is dropped');
        assert_equals(new URLSearchParams('a=b+c').get('a'), 'b c', '+ is a space');
        assert_equals(new URLSearchParams('a=b%2Bc').get('a'), 'b+c', 'percent-decoding');
        assert_equals(new URLSearchParams('a=%zz&b=%C3%A9&c=%FF').toString(), 'a=%25zz&b=%C3%A9&c=%EF%BF%BD',
          'bad escapes and bytes');
        assert_equals(new URLSearchParams({ a: 'b', c: 'd' }).toString(), 'a=b&c=d', 'a record');
        assert_equals(new URLSearchParams([['a', 'b'], ['c', 'd']]).toString(), 'a=b&c=d', 'a sequence');
        assert_equals(new URLSearchParams(new URLSearchParams('x=1&x=2')).getAll('x'), ['1', '2'],
          'another URLSearchParams');
        assert_equals(new URLSearchParams(new Map([['m', 'n']])).get('m'), 'n', 'a Map');
        assert_throws(js(TypeError), () => new URLSearchParams([['a']]), 'a pair of one');
        assert_throws(js(TypeError), () => new URLSearchParams([['a', 'b', 'c']]), 'a pair of three');
        assert_equals(new URLSearchParams({ '+': '%C2' }).toString(), '%2B=%25C2', 'a record is not decoded');
        assert_equals(new URLSearchParams({ '\uD835x': '1', xx: '2', '\uD83Dx': '3' }).toString(),
          '%EF%BF%BDx=3&xx=2', 'lone surrogates in record keys');
        assert_equals(new URLSearchParams('a\0b=42').get('a\0b'), '42', 'a NUL byte');

        const params = new URLSearchParams();
        params.append('a', 'b c');
        params.append('a', '*-._');
        params.append('e', '\u00e9\u{1F600}&=+');
        assert_equals(params.toString(), 'a=b+c&a=*-._&e=%C3%A9%F0%9F%98%80%26%3D%2B', 'serialization');
        assert_equals([params.size, params.get('a'), params.getAll('a'), params.get('zz'), params.getAll('zz')],
          [3, 'b c', ['b c', '*-._'], null, []], 'get and getAll');
        assert_equals([params.has('a'), params.has('a', '*-._'), params.has('a', 'x'), params.has('q')],
          [true, true, false, false], 'has');
        params.set('a', 'new');
        assert_equals(params.toString(), 'a=new&e=%C3%A9%F0%9F%98%80%26%3D%2B', 'set replaces the first and drops the rest');
        params.append('a', 'two');
        params.delete('a', 'new');
        assert_equals(params.getAll('a'), ['two'], 'delete with a value');
        params.delete('a');
        assert_equals([params.has('a'), params.size], [false, 1], 'delete');

        for (const [input, output] of [
          ['z=b&a=b&z=a&a=a', [['a', 'b'], ['a', 'a'], ['z', 'b'], ['z', 'a']]],
          ['\uFFFD=x&\uFFFC&\uFFFD=a', [['\uFFFC', ''], ['\uFFFD', 'x'], ['\uFFFD', 'a']]],
          ['\uFB03&\u{1F308}', [['\u{1F308}', ''], ['\uFB03', '']]],
          ['\u00e9&e\uFFFD&e\u0301', [['e\u0301', ''], ['e\uFFFD', ''], ['\u00e9', '']]],
        ]) {
          const sorted = new URLSearchParams(input);
          sorted.sort();
          assert_equals([...sorted], output, `sort ${show(input)}`);
        }

        const iterated = new URLSearchParams('a=1&b=2&a=3');
        assert_equals([...iterated.keys()], ['a', 'b', 'a'], 'keys');
        assert_equals([...iterated.values()], ['1', '2', '3'], 'values');
        assert_equals([...iterated.entries()], [['a', '1'], ['b', '2'], ['a', '3']], 'entries');
        const visited = [];
        iterated.forEach(function (value, key, object) { visited.push([key, value, object === iterated]); });
        assert_equals(visited, [['a', '1', true], ['b', '2', true], ['a', '3', true]], 'forEach');
        const live = [];
        const growing = new URLSearchParams('x=1');
        for (const [key] of growing) {
          live.push(key);
          if (live.length < 3) growing.append(`y${live.length}`, '');
        }
        assert_equals(live, ['x', 'y1', 'y2'], 'iteration sees appended pairs');
        assert_equals(Object.prototype.toString.call(iterated.entries()), '[object URLSearchParams Iterator]',
          'the iterator tag');

        const url = new URL('http://example.com/?e=f&g=h');
        const searchParams = url.searchParams;
        assert_true(url.searchParams === searchParams, 'searchParams is one object');
        url.search = 'a=b&c=d';
        assert_equals(searchParams.toString(), 'a=b&c=d', 'search updates searchParams');
        searchParams.append('i', ' j ');
        assert_equals(url.search, '?a=b&c=d&i=+j+', 'searchParams updates search');
        searchParams.set('a', 'updated');
        assert_equals(url.href, 'http://example.com/?a=updated&c=d&i=+j+', 'set updates the URL');
        url.href = 'http://example.com/?z=1';
        assert_equals(searchParams.get('z'), '1', 'href updates searchParams');
        searchParams.delete('z');
        assert_equals([url.href, url.search], ['http://example.com/', ''], 'an empty query is removed');
        url.search = '';
        assert_equals(searchParams.size, 0, 'clearing search clears searchParams');
        const opaque = new URL('data:space    ?test');
        opaque.searchParams.delete('test');
        assert_equals(opaque.href, 'data:space', 'trailing spaces of an opaque path are stripped');
        "#,
    )
    .await;
}

#[tokio::test]
async fn structured_clone_of_a_very_deep_graph_is_a_stack_overflow_not_a_crash() {
    let app = spawn_app().await;
    for deep in [
        "let deep = {}; for (let i = 0; i < 2e5; i++) deep = { deep }; structuredClone(deep)",
        "let deep = []; for (let i = 0; i < 2e5; i++) deep = [deep]; structuredClone(deep)",
        "let deep = new Map(); for (let i = 0; i < 2e5; i++) deep = new Map([[1, deep]]); structuredClone(deep)",
    ] {
        let response = app
            .post_execute(json!({ "code": deep, "memoryLimitMb": 256, "timeoutMs": 10000 }))
            .await;
        assert_eq!(
            response.script_error_kind(),
            "stack_overflow",
            "{}",
            response.body
        );
    }
    assert_eq!(
        app.run("structuredClone({ a: 1 }).a").await.result(),
        &json!(1)
    );
}

#[tokio::test]
async fn huge_encodes_and_decodes_count_against_the_memory_limit() {
    let app = spawn_app().await;
    for code in [
        // Every invalid byte becomes a U+FFFD: the text is larger than the bytes.
        "const bytes = new Uint8Array(12 * 1024 * 1024).fill(0xFF); new TextDecoder().decode(bytes).length",
        "new TextEncoder().encode('\\u20AC'.repeat(6 * 1024 * 1024)).length",
        "const text = 'x'.repeat(3e6); const out = []; while (true) out.push(new TextEncoder().encode(text));",
    ] {
        let response = app
            .post_execute(json!({ "code": code, "memoryLimitMb": 16, "timeoutMs": 10000 }))
            .await;
        assert_eq!(response.script_error_kind(), "memory", "{}", response.body);
    }
    let response = app
        .post_execute(json!({ "code": "new TextDecoder().decode(new Uint8Array(1 << 20)).length", "memoryLimitMb": 16 }))
        .await;
    assert_eq!(response.result(), &json!(1 << 20));
}

#[tokio::test]
async fn get_random_values_on_detached_huge_or_odd_arrays_stays_within_the_spec() {
    assert_conforms(
        r#"
        const buffer = new ArrayBuffer(16);
        const view = new Uint32Array(buffer);
        buffer.transfer();
        assert_true(crypto.getRandomValues(view) === view, 'a detached view is returned as is');
        assert_throws(dom('QuotaExceededError'), () => crypto.getRandomValues(new Uint8Array(1 << 24)),
          'a huge array');
        const resizable = new ArrayBuffer(8, { maxByteLength: 16 });
        const tracking = new Uint8Array(resizable);
        resizable.resize(16);
        crypto.getRandomValues(tracking);
        assert_equals(tracking.length, 16, 'a length-tracking view of a grown buffer');
        const shrinking = new Uint8Array(new ArrayBuffer(16, { maxByteLength: 16 }), 8, 8);
        shrinking.buffer.resize(4);
        assert_true(crypto.getRandomValues(shrinking) === shrinking,
          'a view out of its shrunk buffer is returned as is');
        assert_throws(js(TypeError), () => crypto.getRandomValues.call({}, new Uint8Array(1)),
          'a method of crypto only');
        "#,
    )
    .await;
}

#[tokio::test]
async fn the_web_apis_ignore_built_ins_a_script_replaced() {
    let app = spawn_app().await;
    // Made before the built-ins are replaced, since the Map and Set constructors call them.
    let fixtures = "const fixtures = { d: new Date(0), m: new Map([[1, [2]]]), s: new Set([3]), \
                    t: new Int16Array([4]), e: new RangeError('r') };";
    // WebIDL's sequence arguments iterate arrays through the script's own iterator, so
    // `Array.prototype[Symbol.iterator]` is left alone.
    let sabotage = r#"
        const explode = () => { throw new Error('a replaced built-in was called'); };
        const define = Object.defineProperty;
        const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype);
        for (const key of ['buffer', 'byteOffset', 'byteLength', 'length', Symbol.toStringTag]) {
          define(typedArrayPrototype, key, { get: explode });
        }
        define(ArrayBuffer.prototype, 'byteLength', { get: explode });
        define(DataView.prototype, 'buffer', { get: explode });
        Object.getPrototypeOf(new Map().entries()).next = explode;
        Object.getPrototypeOf(new Set().values()).next = explode;
        Object.defineProperty = explode;
        Object.getOwnPropertyDescriptor = explode;
        Object.keys = explode;
        Object.freeze = explode;
        Reflect.apply = explode;
        Reflect.ownKeys = explode;
        Function.prototype.call = explode;
        Function.prototype.apply = explode;
        Function.prototype.bind = explode;
        Array.prototype.push = explode;
        Array.prototype.slice = explode;
        Array.prototype.splice = explode;
        Array.prototype.sort = explode;
        Map.prototype.get = explode;
        Map.prototype.set = explode;
        Map.prototype.has = explode;
        Map.prototype.entries = explode;
        Set.prototype.add = explode;
        Set.prototype.values = explode;
        String.prototype.toWellFormed = explode;
        String.prototype.slice = explode;
        String.prototype.charCodeAt = explode;
        Date.prototype.getTime = explode;
        typedArrayPrototype.set = explode;
        define(Object.prototype, 'get', { value: explode, writable: true, configurable: true });
        define(Object.prototype, 'set', { __proto__: null, value: explode, writable: true, configurable: true });
        globalThis.Error = explode;
        globalThis.TypeError = explode;
        globalThis.ArrayBuffer = explode;
        globalThis.Uint8Array = explode;
    "#;
    let uses = r#"(() => {
        const results = [];
        const add = (...values) => {
          for (let i = 0; i < values.length; i++) results[results.length] = values[i];
        };
        add(new TextDecoder().decode(new TextEncoder().encode('h\u00e9')));
        add(atob(btoa('ok')));
        const url = new URL('https://example.org/?b=2&a=1');
        url.searchParams.sort();
        url.searchParams.append('c', '3');
        add(url.href);
        const clone = structuredClone(fixtures);
        add(clone.m.size, clone.s.size, clone.t[0], clone.e.message);
        add(crypto.getRandomValues(new Int32Array(4))[3] !== undefined, crypto.randomUUID().length);
        const controller = new AbortController();
        let heard = 0;
        controller.signal.addEventListener('abort', () => heard++, { once: true });
        controller.signal.onabort = () => heard++;
        controller.abort();
        add(heard, controller.signal.reason.name, AbortSignal.any([controller.signal]).aborted);
        try { structuredClone(() => 1); } catch (error) { add(error.name); }
        try { atob('*'); } catch (error) { add(error.name); }
        add(typeof performance.now());
        return results;
    })()"#;
    let expected = json!([
        "h\u{e9}",
        "ok",
        "https://example.org/?a=1&b=2&c=3",
        1,
        1,
        4,
        "r",
        true,
        36,
        2,
        "AbortError",
        true,
        "DataCloneError",
        "InvalidCharacterError",
        "number"
    ]);
    // Before any API was used (each group is loaded from the captured built-ins)...
    let response = app.run(&format!("{fixtures}\n{sabotage}\n{uses}")).await;
    assert_eq!(response.result(), &expected, "{}", response.body);
    // ...and after every API was used once.
    let response = app
        .run(&format!("{fixtures}\n{uses};\n{{ {sabotage} }}\n{uses}"))
        .await;
    assert_eq!(response.result(), &expected, "{}", response.body);
}
