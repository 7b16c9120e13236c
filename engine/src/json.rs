//! JSON text written against a budget of bytes: everything that leaves a runtime (a result, a
//! console entry, an error's fields) is counted in the bytes of the JSON that will be sent,
//! escapes included, and cut before it is copied out.
//!
//! The writer always keeps room to close what it opened. A writer made with [`JsonWriter::new`]
//! also keeps room for one `"[truncated]"` marker, so what it writes is valid JSON no longer
//! than its limit, however the budget runs out. One made with [`JsonWriter::whole`] is for a
//! value that is refused rather than cut (an execution's result): it keeps no room for a
//! marker, so a value of exactly its limit fits, and one byte more exhausts it.

/// Marker left where output was cut.
pub const TRUNCATED: &str = "[truncated]";

/// Room kept for the marker at any point: `,"[truncated]":"[truncated]"` in an object.
const MARKER_ROOM: usize = 2 * (TRUNCATED.len() + 2) + 2;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Array,
    Object,
}

struct Open {
    container: Container,
    empty: bool,
    /// In an object, a key was written and its value is due.
    after_key: bool,
}

/// Writes JSON text into `out`, never past `limit` bytes in all.
pub struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
    open: Vec<Open>,
    exhausted: bool,
    /// Bytes kept for the marker: [`MARKER_ROOM`] when cut values are marked, 0 when a value
    /// that does not fit is refused whole.
    marker_room: usize,
}

impl<'a> JsonWriter<'a> {
    /// A writer appending to `out`, which must end up no longer than `limit` bytes. When even
    /// the marker does not fit, nothing is written and the writer starts exhausted.
    pub fn new(out: &'a mut Vec<u8>, limit: usize) -> Self {
        Self::with_marker_room(out, limit, MARKER_ROOM)
    }

    /// A writer for a value that is kept whole or not at all: nothing is marked where the
    /// budget runs out (the writer is only exhausted, and what it wrote is to be discarded),
    /// so every byte up to `limit` is available to the value.
    pub fn whole(out: &'a mut Vec<u8>, limit: usize) -> Self {
        Self::with_marker_room(out, limit, 0)
    }

    fn with_marker_room(out: &'a mut Vec<u8>, limit: usize, marker_room: usize) -> Self {
        let exhausted = out.len() + marker_room > limit;
        Self {
            out,
            limit,
            open: Vec::new(),
            exhausted,
            marker_room,
        }
    }

    /// True when a cut is marked; false for a writer made with [`JsonWriter::whole`].
    fn marks_cuts(&self) -> bool {
        self.marker_room > 0
    }

    /// True once something had to be cut; later values are not written.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// Bytes that can still be written before the budget runs out.
    pub fn remaining(&self) -> usize {
        self.limit
            .saturating_sub(self.out.len() + self.open.len() + self.marker_room)
    }

    fn fits(&self, bytes: usize) -> bool {
        bytes <= self.remaining()
    }

    /// The separator due before the next value or key.
    fn separator(&self) -> usize {
        match self.open.last() {
            Some(open) if !open.empty && !open.after_key => 1,
            _ => 0,
        }
    }

    fn write_separator(&mut self) {
        if self.separator() == 1 {
            self.out.push(b',');
        }
        if let Some(open) = self.open.last_mut() {
            open.empty = false;
            open.after_key = false;
        }
    }

    /// Leaves the marker where the next value or member would go, and stops writing.
    fn cut(&mut self) {
        if self.exhausted {
            return;
        }
        self.exhausted = true;
        if !self.marks_cuts() {
            return;
        }
        let in_object_member = matches!(
            self.open.last(),
            Some(Open {
                container: Container::Object,
                after_key: false,
                ..
            })
        );
        self.write_separator();
        if in_object_member {
            self.push_quoted(TRUNCATED);
            self.out.push(b':');
        }
        self.push_quoted(TRUNCATED);
    }

    fn push_quoted(&mut self, plain: &str) {
        self.out.push(b'"');
        self.out.extend_from_slice(plain.as_bytes());
        self.out.push(b'"');
    }

    /// Writes a token that needs no escaping (a number, `null`, `true`, `false`).
    pub fn raw(&mut self, token: &str) -> bool {
        if self.exhausted {
            return false;
        }
        if !self.fits(self.separator() + token.len()) {
            self.cut();
            return false;
        }
        self.write_separator();
        self.out.extend_from_slice(token.as_bytes());
        true
    }

    /// Writes a whole string value, or the marker when it does not fit.
    pub fn string(&mut self, text: &str) -> bool {
        if self.exhausted {
            return false;
        }
        if !self.fits(self.separator() + escaped_len(text) + 2) {
            self.cut();
            return false;
        }
        self.write_separator();
        self.out.push(b'"');
        escape_into(self.out, text);
        self.out.push(b'"');
        true
    }

    /// Writes as much of a string value as fits, ending it with the marker when it was cut
    /// (`"abc...[truncated]"`); the writer is exhausted after a cut.
    pub fn string_prefix(&mut self, text: &str) -> bool {
        if self.exhausted {
            return false;
        }
        let separator = self.separator();
        let whole = separator + escaped_len(text) + 2;
        if whole <= self.remaining() || !self.marks_cuts() {
            return self.string(text);
        }
        let room = self.remaining() + self.marker_room;
        // The cut string, its quotes and the marker replace the marker room.
        let Some(budget) = room.checked_sub(separator + 2 + TRUNCATED.len()) else {
            self.cut();
            return false;
        };
        self.write_separator();
        self.out.push(b'"');
        escape_prefix_into(self.out, text, budget);
        self.out.extend_from_slice(TRUNCATED.as_bytes());
        self.out.push(b'"');
        self.exhausted = true;
        false
    }

    /// Writes an object key; false (and nothing more will be written) when it does not fit.
    pub fn key(&mut self, key: &str) -> bool {
        if self.exhausted {
            return false;
        }
        // A key is only worth writing with room for at least the smallest value after it: when
        // cuts are marked, one that is not itself a marker (`null`); otherwise a digit.
        let smallest_value = if self.marks_cuts() { 4 } else { 1 };
        if !self.fits(self.separator() + escaped_len(key) + 3 + smallest_value) {
            self.cut();
            return false;
        }
        self.write_separator();
        self.out.push(b'"');
        escape_into(self.out, key);
        self.out.extend_from_slice(b"\":");
        if let Some(open) = self.open.last_mut() {
            open.after_key = true;
        }
        true
    }

    fn begin(&mut self, container: Container, token: u8) -> bool {
        if self.exhausted {
            return false;
        }
        if !self.fits(self.separator() + 2) {
            self.cut();
            return false;
        }
        self.write_separator();
        self.out.push(token);
        self.open.push(Open {
            container,
            empty: true,
            after_key: false,
        });
        true
    }

    /// Opens an array; false when it does not fit (then it must not be ended).
    pub fn begin_array(&mut self) -> bool {
        self.begin(Container::Array, b'[')
    }

    /// Opens an object; false when it does not fit (then it must not be ended).
    pub fn begin_object(&mut self) -> bool {
        self.begin(Container::Object, b'{')
    }

    /// Closes the innermost array or object; room for this was kept from the start.
    pub fn end(&mut self) {
        if let Some(open) = self.open.pop() {
            if open.after_key && self.marks_cuts() {
                // A key whose value was never written: complete the member.
                self.push_quoted(TRUNCATED);
            }
            self.out.push(match open.container {
                Container::Array => b']',
                Container::Object => b'}',
            });
        }
    }
}

/// Bytes `text` takes once escaped, without quotes.
pub fn escaped_len(text: &str) -> usize {
    text.bytes().map(escaped_byte_len).sum()
}

fn escaped_byte_len(byte: u8) -> usize {
    match byte {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..=0x1f => 6,
        _ => 1,
    }
}

/// Appends `text` escaped as in a JSON string (as `serde_json` does), without quotes.
pub fn escape_into(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if escaped_byte_len(byte) == 1 {
            continue;
        }
        out.extend_from_slice(&bytes[start..index]);
        push_escape(out, byte);
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
    }
}

/// The end of the longest prefix of `text`, cut at a character boundary, whose escaped form
/// takes at most `budget` bytes.
fn prefix_end(text: &str, budget: usize) -> usize {
    let mut used = 0;
    for (index, character) in text.char_indices() {
        let length: usize = text[index..index + character.len_utf8()]
            .bytes()
            .map(escaped_byte_len)
            .sum();
        if used + length > budget {
            return index;
        }
        used += length;
    }
    text.len()
}

fn escape_prefix_into(out: &mut Vec<u8>, text: &str, budget: usize) {
    escape_into(out, &text[..prefix_end(text, budget)]);
}

/// `text` cut so that its escaped form fits in `budget` bytes, with the marker appended when
/// it was cut; for the text fields of an error, which are copied out as strings.
pub fn bounded_text(text: &str, budget: usize) -> String {
    if escaped_len(text) <= budget {
        return text.to_owned();
    }
    let end = prefix_end(text, budget.saturating_sub(TRUNCATED.len()));
    let mut cut = String::with_capacity(end + TRUNCATED.len());
    cut.push_str(&text[..end]);
    cut.push_str(TRUNCATED);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(bytes)))
    }

    #[test]
    fn escaping_matches_serde_json() {
        let text =
            "plain \"quoted\" back\\slash \n\r\t \u{8}\u{c} \u{1} \u{1f} caf\u{e9} \u{1f600}";
        let mut out = Vec::new();
        escape_into(&mut out, text);
        let expected = serde_json::to_string(text).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            expected[1..expected.len() - 1]
        );
        assert_eq!(escaped_len(text), expected.len() - 2);
    }

    #[test]
    fn nested_values_are_written_as_json() {
        let mut out = Vec::new();
        let mut writer = JsonWriter::new(&mut out, 1000);
        writer.begin_object();
        writer.key("a");
        writer.begin_array();
        writer.raw("1");
        writer.string("two\n");
        writer.begin_object();
        writer.end();
        writer.end();
        writer.key("b");
        writer.raw("null");
        writer.end();
        assert!(!writer.exhausted());
        assert_eq!(
            parse(&out),
            serde_json::json!({"a": [1, "two\n", {}], "b": null})
        );
    }

    #[test]
    fn output_never_passes_its_limit_and_stays_valid() {
        // Every limit from nothing to more than enough, with strings that escape heavily.
        for limit in 0..200 {
            let mut out = Vec::new();
            let mut writer = JsonWriter::new(&mut out, limit);
            if writer.begin_object() {
                for index in 0..20 {
                    if !writer.key(&format!("k{index}\u{1}")) {
                        break;
                    }
                    if writer.begin_array() {
                        writer.string_prefix("\u{0}\u{0}\"\"caf\u{e9}");
                        writer.raw("12345");
                        writer.end();
                    }
                }
                writer.end();
            }
            assert!(out.len() <= limit, "{limit}: {}", out.len());
            if !out.is_empty() {
                parse(&out);
            }
        }
    }

    #[test]
    fn a_long_string_keeps_its_head_and_the_marker() {
        let mut out = Vec::new();
        let mut writer = JsonWriter::new(&mut out, 60);
        writer.begin_array();
        writer.string_prefix(&"\u{e9}".repeat(100));
        writer.end();
        assert!(writer.exhausted());
        let value = parse(&out);
        let text = value[0].as_str().unwrap();
        assert!(
            text.starts_with('\u{e9}') && text.ends_with(TRUNCATED),
            "{text}"
        );
        assert!(out.len() <= 60);
    }

    #[test]
    fn a_whole_writer_fits_a_value_of_exactly_its_limit_and_no_more() {
        let values = [
            serde_json::json!("a string \"with\" escapes\n"),
            serde_json::json!({"key": [1, "two", {"three": null}], "other": true}),
            serde_json::json!([[], {}, 0]),
        ];
        for value in values {
            let expected = serde_json::to_vec(&value).unwrap();
            for limit in [expected.len(), expected.len() - 1] {
                let mut out = Vec::new();
                let mut writer = JsonWriter::whole(&mut out, limit);
                write_value(&mut writer, &value);
                let fits = limit == expected.len();
                assert_eq!(writer.exhausted(), !fits, "{value} in {limit}");
                if fits {
                    assert_eq!(out, expected);
                }
            }
        }
    }

    fn write_value(writer: &mut JsonWriter<'_>, value: &serde_json::Value) {
        match value {
            serde_json::Value::String(text) => {
                writer.string_prefix(text);
            }
            serde_json::Value::Array(items) => {
                if writer.begin_array() {
                    items.iter().for_each(|item| write_value(writer, item));
                    writer.end();
                }
            }
            serde_json::Value::Object(members) => {
                if writer.begin_object() {
                    for (key, item) in members {
                        if writer.key(key) {
                            write_value(writer, item);
                        }
                    }
                    writer.end();
                }
            }
            other => {
                writer.raw(&other.to_string());
            }
        }
    }

    #[test]
    fn bounded_text_counts_escapes() {
        assert_eq!(bounded_text("short", 100), "short");
        let cut = bounded_text(&"\u{1}".repeat(100), 40);
        assert!(cut.ends_with(TRUNCATED));
        assert!(escaped_len(&cut) <= 40, "{}", escaped_len(&cut));
        assert!(cut.starts_with('\u{1}'));
    }
}
