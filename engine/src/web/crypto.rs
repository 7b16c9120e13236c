//! `crypto.getRandomValues` and `crypto.randomUUID`, from the operating system's CSPRNG, so no
//! execution can predict another's values. The prelude checks the array's type and size.

use rquickjs::{Ctx, Result, Value};

use super::buffer_bytes;
use crate::fault;

/// Fills `[offset, offset + length)` of `buffer` with random bytes.
pub fn fill_random<'js>(
    ctx: Ctx<'js>,
    buffer: Value<'js>,
    offset: usize,
    length: usize,
) -> Result<()> {
    // SAFETY: no script code runs while the bytes are filled.
    let Some(bytes) = (unsafe { buffer_bytes(&buffer, offset, length) }) else {
        return Ok(());
    };
    getrandom::fill(bytes).map_err(|error| {
        fault::internal_error(&ctx, &format!("the random number source failed: {error}"))
    })
}

/// A version 4 UUID in its lowercase, hyphenated form.
pub fn random_uuid<'js>(ctx: Ctx<'js>) -> Result<String> {
    let mut bytes = [0; 16];
    getrandom::fill(&mut bytes).map_err(|error| {
        fault::internal_error(&ctx, &format!("the random number source failed: {error}"))
    })?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}
