//! The byte work of `fetch`'s JavaScript half: bodies cross to and from the host as base64
//! (JSON carries no bytes), and `Response.text()` is the Encoding Standard's UTF-8 decode.

use base64::{Engine, prelude::BASE64_STANDARD};
use rquickjs::{ArrayBuffer, Ctx, Exception, Result, Value};

use super::buffer_bytes;

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
) -> Result<String> {
    with_bytes(&ctx, &buffer, offset, length, |bytes| {
        BASE64_STANDARD.encode(bytes)
    })
}

/// The bytes a base64 text (from the host) stands for, as a new `ArrayBuffer`.
pub fn from_base64<'js>(ctx: Ctx<'js>, text: String) -> Result<ArrayBuffer<'js>> {
    let bytes = BASE64_STANDARD
        .decode(text)
        .map_err(|_| Exception::throw_type(&ctx, "the response body is not valid base64"))?;
    ArrayBuffer::new(ctx, bytes)
}

/// UTF-8 decode (BOM removed, errors replaced) of `[offset, offset + length)` of a buffer.
pub fn decode_utf8<'js>(
    ctx: Ctx<'js>,
    buffer: Value<'js>,
    offset: usize,
    length: usize,
) -> Result<String> {
    with_bytes(&ctx, &buffer, offset, length, |bytes| {
        encoding_rs::UTF_8
            .decode_with_bom_removal(bytes)
            .0
            .into_owned()
    })
}
