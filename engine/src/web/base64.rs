//! `atob` and `btoa`: the HTML standard's forgiving-base64 decode and base64 encode over
//! "binary strings" (one character per byte), with the `base64` crate's standard alphabet.
//! Failures return `None`; the prelude turns them into `InvalidCharacterError`s.

use base64::{
    Engine,
    alphabet::STANDARD,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    prelude::BASE64_STANDARD,
};

use super::Usv;

/// Decodes without padding and ignores the bits past the last whole byte, as
/// forgiving-base64 does once its own padding rules were applied.
const FORGIVING: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Forgiving-base64 decode: the bytes as a binary string, or `None` on failure.
pub fn atob(data: Usv) -> Option<String> {
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
        return None;
    }
    let bytes = FORGIVING.decode(&data).ok()?;
    Some(bytes.into_iter().map(char::from).collect())
}

/// Base64 of a binary string, or `None` when a character is above U+00FF.
pub fn btoa(data: Usv) -> Option<String> {
    let bytes = data
        .0
        .chars()
        .map(|character| u8::try_from(character).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(BASE64_STANDARD.encode(bytes))
}
