//! The byte side of `TextEncoder` and `TextDecoder`: the Encoding Standard's UTF-8 encoder and
//! its decoders (every label it defines, with `fatal`, `ignoreBOM` and streaming), from
//! `encoding_rs`, the implementation Firefox uses.
//!
//! The decoded text is built in host memory before it becomes a JavaScript string: that copy
//! is charged to the execution's memory limit as it grows, before each step is reserved, so a
//! decode that would not fit fails as `memory` without allocating it.

use std::{cell::RefCell, rc::Rc};

use encoding_rs::{CoderResult, DecoderResult, Encoding, REPLACEMENT, UTF_8};
use rquickjs::{Ctx, Exception, Function, Object, Result, TypedArray, Value};

use super::{Usv, buffer_bytes};
use crate::memory;

/// The UTF-8 bytes of `text`, unpaired surrogates as U+FFFD, as a new `Uint8Array`.
pub fn encode<'js>(ctx: Ctx<'js>, text: Usv) -> Result<TypedArray<'js, u8>> {
    TypedArray::new_copy(ctx, text.0.as_bytes())
}

/// Writes as many whole characters of `text` as fit into `[offset, offset + length)` of
/// `buffer`; answers `{ read, written }` in UTF-16 units read and bytes written.
pub fn encode_into<'js>(
    ctx: Ctx<'js>,
    text: Usv,
    buffer: Value<'js>,
    offset: usize,
    length: usize,
) -> Result<Object<'js>> {
    let (mut read, mut written) = (0, 0);
    // SAFETY: no script code runs while the bytes are written.
    if let Some(destination) = unsafe { buffer_bytes(&buffer, offset, length) } {
        for character in text.0.chars() {
            let end = written + character.len_utf8();
            if end > destination.len() {
                break;
            }
            character.encode_utf8(&mut destination[written..end]);
            written = end;
            read += character.len_utf16();
        }
    }
    let result = Object::new(ctx)?;
    result.set("read", read)?;
    result.set("written", written)?;
    Ok(result)
}

/// The lowercase name of the encoding `label` stands for, or `None` when it names none (or
/// the replacement encoding, which `TextDecoder` refuses).
pub fn encoding_for(label: Usv) -> Option<String> {
    let encoding = Encoding::for_label(label.0.as_bytes())?;
    (encoding != REPLACEMENT).then(|| encoding.name().to_ascii_lowercase())
}

struct DecoderState {
    encoding: &'static Encoding,
    ignore_bom: bool,
    decoder: encoding_rs::Decoder,
    /// The "do not flush" flag: the last call streamed, so its state carries on.
    streaming: bool,
}

impl DecoderState {
    fn fresh_decoder(&self) -> encoding_rs::Decoder {
        if self.ignore_bom {
            self.encoding.new_decoder_without_bom_handling()
        } else {
            self.encoding.new_decoder_with_bom_removal()
        }
    }
}

/// A `TextDecoder`'s decode steps for the encoding `name`: a function of
/// `(buffer, offset, length, stream)` keeping its own state between streamed calls.
pub fn decoder<'js>(
    ctx: Ctx<'js>,
    name: Usv,
    fatal: bool,
    ignore_bom: bool,
) -> Result<Function<'js>> {
    let encoding = Encoding::for_label(name.0.as_bytes()).unwrap_or(UTF_8);
    let state = Rc::new(RefCell::new(DecoderState {
        encoding,
        ignore_bom,
        decoder: encoding.new_decoder(),
        streaming: false,
    }));
    Function::new(
        ctx,
        move |ctx: Ctx<'js>, buffer: Value<'js>, offset: usize, length: usize, stream: bool| {
            let mut state = state.borrow_mut();
            if !state.streaming {
                state.decoder = state.fresh_decoder();
            }
            state.streaming = stream;
            // SAFETY: no script code runs while the bytes are decoded.
            let input: &[u8] = match unsafe { buffer_bytes(&buffer, offset, length) } {
                Some(bytes) => bytes,
                None => &[],
            };
            // The text grows as it is decoded, each step charged before it is reserved: room
            // for the rest of the input byte for byte (ASCII and UTF-8 decode in one step),
            // again when a step fills it (a byte may become up to three).
            let mut text = String::new();
            let mut charge = memory::charge(&ctx, 0)?;
            let mut rest = input;
            let last = !stream;
            loop {
                let room = rest.len().saturating_add(16);
                charge.add(&ctx, room)?;
                text.reserve_exact(room);
                let (full, read) = if fatal {
                    let (result, read) = state
                        .decoder
                        .decode_to_string_without_replacement(rest, &mut text, last);
                    match result {
                        DecoderResult::Malformed(..) => {
                            state.streaming = false;
                            return Err(Exception::throw_type(
                                &ctx,
                                &format!(
                                    "The encoded data was not valid {}.",
                                    state.encoding.name()
                                ),
                            ));
                        }
                        DecoderResult::OutputFull => (true, read),
                        DecoderResult::InputEmpty => (false, read),
                    }
                } else {
                    let (result, read, _) = state.decoder.decode_to_string(rest, &mut text, last);
                    (result == CoderResult::OutputFull, read)
                };
                rest = &rest[read..];
                if !full {
                    break;
                }
            }
            rquickjs::String::from_str(ctx, &text)
        },
    )
}
