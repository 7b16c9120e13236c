//! The natives written in Rust charge their host-side copies to the execution's memory limit:
//! a script cannot use them to make its process hold more than its limit, and running out
//! there ends the execution as `memory`, as any allocation past the limit does.

use std::{sync::Arc, time::Duration};

use engine::{
    EngineSettings, ErrorKind, HostAccess, HostFunctions, Json, Language, Limits, Outcome, Script,
    host::HostGrant,
};

const MIB: usize = 1024 * 1024;

/// `code` as a script, with a minute to run and `memory_limit` bytes.
fn script_and_limits(code: &str, memory_limit: usize) -> (Script, Limits) {
    let script = Script {
        name: "script.js".into(),
        source: Arc::from(code),
        language: Language::JavaScript,
        input: None,
    };
    let limits = Limits {
        timeout: Duration::from_secs(60),
        memory_limit,
    };
    (script, limits)
}

fn run(code: &str, memory_limit: usize) -> Outcome {
    let (script, limits) = script_and_limits(code, memory_limit);
    engine::execute(&EngineSettings::default(), script, limits)
        .unwrap()
        .0
}

/// A script that gives `native` an input of `megabytes` MiB: `text` (that many ASCII
/// characters) or `bytes` (that many bytes of them).
fn feed(native: &str, megabytes: usize) -> String {
    let input = if native.contains("bytes") {
        "const bytes = new Uint8Array(SIZE).fill(0x41);"
    } else {
        "const text = 'A'.repeat(SIZE);"
    };
    format!(
        "{} const out = {native}; out === undefined ? 'none' : 'ran'",
        input.replace("SIZE", &(megabytes * MIB).to_string())
    )
}

/// Each native, as an expression of its input, and a limit in MiB between the most an 8 MiB
/// input makes the runtime hold without the native's host copies and the most it holds with
/// them (as measured): the native's copies, and only they, take the execution past it.
const NATIVES: [(&str, &str, usize); 9] = [
    ("TextDecoder.decode", "new TextDecoder().decode(bytes)", 20),
    ("TextEncoder.encode", "new TextEncoder().encode(text)", 28),
    (
        "TextEncoder.encodeInto",
        "new TextEncoder().encodeInto(text, new Uint8Array(16))",
        20,
    ),
    ("atob", "atob(text)", 39),
    ("btoa", "btoa(text)", 36),
    ("URL", "new URL('http://a/#' + text)", 76),
    ("URL.canParse", "URL.canParse(text)", 44),
    ("URLSearchParams", "new URLSearchParams(text)", 40),
    (
        "URLSearchParams.append",
        "(() => { const p = new URLSearchParams(); p.append('a', text); return p.toString(); })()",
        48,
    ),
];

#[test]
fn every_native_whose_host_copies_do_not_fit_answers_memory() {
    let not_memory: Vec<_> = NATIVES
        .iter()
        .map(|(native, expression, limit)| (native, run(&feed(expression, 8), limit * MIB).result))
        .filter(|(_, result)| !matches!(result, Err(error) if error.kind == ErrorKind::Memory))
        .collect();
    assert!(not_memory.is_empty(), "{not_memory:#?}");
}

#[test]
fn the_same_natives_run_when_the_limit_leaves_room_for_their_copies() {
    for (native, expression, _) in NATIVES {
        let outcome = run(&feed(expression, 1), 64 * MIB);
        assert_eq!(outcome.result.as_deref(), Ok("\"ran\""), "{native}");
    }
}

#[test]
fn a_decoded_text_is_counted_in_the_peak_while_it_is_built() {
    // The input (8 MiB in the runtime), the host copy (8 MiB and a little, charged) and the
    // string made of it (8 MiB in the runtime) are all held at once.
    let outcome = run(
        "const bytes = new Uint8Array(8 * 1024 * 1024).fill(0x41);
         new TextDecoder().decode(bytes).length",
        256 * MIB,
    );
    assert_eq!(outcome.result.as_deref(), Ok("8388608"));
    assert!(
        outcome.memory_peak >= 24 * MIB,
        "peak {} bytes: the host copy was not counted",
        outcome.memory_peak
    );
}

#[test]
fn a_caught_out_of_memory_in_a_native_still_leaves_the_limit_in_force() {
    // The script catches the refusal and tries again; the charge was never taken, so the
    // second attempt is refused the same way and nothing was leaked.
    let outcome = run(
        "const bytes = new Uint8Array(40 * 1024 * 1024).fill(0x41);
         let refused = 0;
         for (let i = 0; i < 3; i++) {
           try { new TextDecoder().decode(bytes); } catch (error) { refused++; }
         }
         refused",
        64 * MIB,
    );
    assert_eq!(outcome.result.as_deref(), Ok("3"));
    // Nothing was allocated for the refused copies: no out-of-memory path of QuickJS ran.
    assert!(!outcome.engine_fault);
}

#[test]
fn an_allocation_the_runtime_refused_is_reported_even_when_the_script_caught_it() {
    let outcome = run(
        "try { const keep = []; for (;;) keep.push(new Array(100000).fill(1)); }
         catch (error) { 'caught' }",
        16 * MIB,
    );
    assert_eq!(outcome.result.as_deref(), Ok("\"caught\""));
    assert!(outcome.engine_fault);
}

#[test]
fn a_null_thrown_after_running_out_of_memory_is_reported_as_memory() {
    // What QuickJS throws when it cannot even build its out-of-memory error; a script can
    // throw it too, but once the limit stopped an allocation the kind is `memory` either way.
    let outcome = run(
        "try { const keep = []; for (;;) keep.push(new Array(100000).fill(1)); }
         catch (error) { throw null; }",
        16 * MIB,
    );
    let error = outcome.result.expect_err("the script throws");
    assert_eq!(error.kind, ErrorKind::Memory, "{error:?}");
}

/// Runs `code` granted the synchronous host function `count`, which answers how many values
/// its first argument holds.
fn run_with_count(code: &str, memory_limit: usize) -> Outcome {
    let functions = HostFunctions::new().sync("count", |arguments| {
        Ok(Json::from(
            arguments
                .first()
                .and_then(Json::as_array)
                .map_or(0, Vec::len),
        ))
    });
    let access = HostAccess {
        functions,
        grant: HostGrant {
            functions: vec!["count".into()],
            max_calls: 10,
        },
        channel: None,
    };
    let (script, limits) = script_and_limits(code, memory_limit);
    engine::execute_with_host(&EngineSettings::default(), script, limits, access)
        .unwrap()
        .0
}

#[test]
fn host_call_arguments_that_parse_into_more_than_the_limit_answer_memory() {
    // 300 000 one-entry objects: 2.4 MB of JSON, within the 4 MiB a call may take, but each
    // a whole B-tree leaf once parsed on the host, far more than the runtime holds of them.
    let outcome = run_with_count(
        "count(Array.from({ length: 300000 }, () => ({ a: 0 })))",
        64 * MIB,
    );
    let error = outcome.result.expect_err("the parse does not fit");
    assert_eq!(error.kind, ErrorKind::Memory, "{error:?}");
}

#[test]
fn host_call_arguments_that_fit_are_parsed_and_passed() {
    let outcome = run_with_count(
        "count(Array.from({ length: 1000 }, () => ({ a: 0 })))",
        64 * MIB,
    );
    assert_eq!(outcome.result.as_deref(), Ok("1000"));
}

#[test]
fn a_decode_that_expands_its_input_grows_its_text_step_by_step() {
    // Each invalid byte becomes U+FFFD (three bytes of UTF-8), each windows-1252 `é` two: the
    // text outgrows the room first reserved for it, and is still whole.
    let outcome = run(
        "const invalid = new TextDecoder().decode(new Uint8Array(100000).fill(0xFF));
         const latin = new TextDecoder('windows-1252').decode(new Uint8Array(100000).fill(0xE9));
         const mixed = new TextDecoder().decode(new Uint8Array([0x41, 0xFF, 0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80]));
         [invalid === '\\uFFFD'.repeat(100000), latin === '\\u00E9'.repeat(100000), mixed]",
        64 * MIB,
    );
    assert_eq!(
        outcome.result.as_deref(),
        Ok("[true,true,\"A\u{FFFD}é😀\"]")
    );
}
