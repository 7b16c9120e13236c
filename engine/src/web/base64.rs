//! `atob` and `btoa`: the HTML standard's forgiving-base64 decode and base64 encode over
//! "binary strings" (one character per byte), with the `base64` crate's standard alphabet.
//! Failures return `None`; the prelude turns them into `InvalidCharacterError`s.
//!
//! Each host copy is charged to the execution's memory limit before it is made, and the answer
//! becomes a JavaScript string while the charges are held.

use base64::{
    Engine,
    alphabet::STANDARD,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    prelude::BASE64_STANDARD,
};

use rquickjs::{Ctx, Result};

use super::Usv;
use crate::memory;

/// Decodes without padding and ignores the bits past the last whole byte, as
/// forgiving-base64 does once its own padding rules were applied.
const FORGIVING: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Forgiving-base64 decode: the bytes as a binary string, or `None` on failure.
pub fn atob<'js>(ctx: Ctx<'js>, data: Usv) -> Result<Option<rquickjs::String<'js>>> {
    let _filtered = memory::charge(&ctx, data.0.len())?;
    let mut data: Vec<u8> = data
        .0
        .bytes()
        .filter(|byte| !matches!(byte, b'\t' | b'\n' | b'\x0C' | b'\r' | b' '))
        .collect();
    if data.len().is_multiple_of(4) {
        for _ in 0..2 {
            if data.last() == Some(&b'=') {
                data.pop();
            }
        }
    }
    if data.len() % 4 == 1 {
        return Ok(None);
    }
    let decoded_length = data.len() / 4 * 3 + 2;
    let _decoded = memory::charge(&ctx, decoded_length)?;
    let Ok(bytes) = FORGIVING.decode(&data) else {
        return Ok(None);
    };
    drop(data);
    // A byte above 0x7F takes two bytes of UTF-8.
    let _text = memory::charge(&ctx, 2 * bytes.len())?;
    let text: String = bytes.into_iter().map(char::from).collect();
    rquickjs::String::from_str(ctx, &text).map(Some)
}

/// Base64 of a binary string, or `None` when a character is above U+00FF.
pub fn btoa<'js>(ctx: Ctx<'js>, data: Usv) -> Result<Option<rquickjs::String<'js>>> {
    let _bytes = memory::charge(&ctx, data.0.len())?;
    let Some(bytes) = data
        .0
        .chars()
        .map(|character| u8::try_from(character).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return Ok(None);
    };
    drop(data);
    let _encoded = memory::charge(&ctx, bytes.len().div_ceil(3) * 4)?;
    let encoded = BASE64_STANDARD.encode(bytes);
    rquickjs::String::from_str(ctx, &encoded).map(Some)
}
