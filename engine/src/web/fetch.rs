//! The byte work of `fetch`'s JavaScript half: bodies cross to and from the host as base64
//! (JSON carries no bytes), and `Response.text()` is the Encoding Standard's UTF-8 decode.
//!
//! Each host copy is charged to the execution's memory limit before it is made, and becomes a
//! JavaScript value (in the runtime's own, metered memory) while the charge is held.

use base64::{Engine, prelude::BASE64_STANDARD};
use rquickjs::{ArrayBuffer, Ctx, Exception, Result, Value};

use super::{Usv, buffer_bytes};
use crate::memory;

/// `read` of the bytes `[offset, offset + length)` of a buffer.
fn with_bytes<'js, T>(
    ctx: &Ctx<'js>,
    buffer: &Value<'js>,
    offset: usize,
    length: usize,
    read: impl FnOnce(&[u8]) -> T,
) -> Result<T> {
    // SAFETY: `read` runs no script code.
    match unsafe { buffer_bytes(buffer, offset, length) } {
        Some(bytes) => Ok(read(bytes)),
        None => Err(Exception::throw_type(ctx, "the body's buffer was detached")),
    }
}

/// Base64 of the bytes `[offset, offset + length)` of a buffer.
pub fn to_base64<'js>(
    ctx: Ctx<'js>,
    buffer: Value<'js>,
    offset: usize,
    length: usize,
) -> Result<rquickjs::String<'js>> {
    let _encoded = memory::charge(&ctx, length.div_ceil(3).saturating_mul(4))?;
    let encoded = with_bytes(&ctx, &buffer, offset, length, |bytes| {
        BASE64_STANDARD.encode(bytes)
    })?;
    rquickjs::String::from_str(ctx, &encoded)
}

/// The bytes a base64 text (from the host) stands for, as a new `ArrayBuffer`.
pub fn from_base64<'js>(ctx: Ctx<'js>, text: Usv) -> Result<ArrayBuffer<'js>> {
    let _decoded = memory::charge(&ctx, text.0.len() / 4 * 3 + 3)?;
    let bytes = BASE64_STANDARD
        .decode(&text.0)
        .map_err(|_| Exception::throw_type(&ctx, "the response body is not valid base64"))?;
    drop(text);
    ArrayBuffer::new_copy(ctx, bytes)
}

/// UTF-8 decode (BOM removed, errors replaced) of `[offset, offset + length)` of a buffer.
pub fn decode_utf8<'js>(
    ctx: Ctx<'js>,
    buffer: Value<'js>,
    offset: usize,
    length: usize,
) -> Result<rquickjs::String<'js>> {
    // Each byte decodes to at most three (an invalid byte becomes U+FFFD).
    let _text = memory::charge(&ctx, length.saturating_mul(3))?;
    let text = with_bytes(&ctx, &buffer, offset, length, |bytes| {
        encoding_rs::UTF_8
            .decode_with_bom_removal(bytes)
            .0
            .into_owned()
    })?;
    rquickjs::String::from_str(ctx, &text)
}
