//! The parsing side of `URL` and `URLSearchParams`: the WHATWG URL Standard's parser and its
//! setters (`url::quirks`, written for exactly these getters and setters) and the
//! application/x-www-form-urlencoded parser and serializer (`form_urlencoded`).
//!
//! A URL crosses to the script as its components, in the order of [`components`]. Every host
//! copy is charged to the execution's memory limit before it is made, at its worst-case size,
//! and the answer becomes JavaScript values while the charges are held.

use rquickjs::{Array, Ctx, IntoJs, Result, Value, function::Opt};
use url::{Url, quirks};

use super::Usv;
use crate::{fault, memory};

/// Bytes a parsed URL's serialization may take per byte of input: every byte may become a
/// three-byte percent-escape, in a string whose capacity may have doubled as it grew.
const PARSED_PER_INPUT_BYTE: usize = 6;
/// Bytes the components of a URL take per byte of its href: the href itself, the origin (no
/// longer than it), and the other components, which are disjoint parts of it (the host twice).
const COMPONENTS_PER_HREF_BYTE: usize = 4;
/// Host bytes of one `String` besides its text.
const STRING_HEADER: usize = size_of::<String>();

/// `href`, `origin`, `protocol`, `username`, `password`, `host`, `hostname`, `port`,
/// `pathname`, `search`, `hash`, as a JavaScript array.
fn components<'js>(ctx: &Ctx<'js>, url: &Url) -> Result<Value<'js>> {
    let href = quirks::href(url).len();
    let _components = memory::charge(ctx, COMPONENTS_PER_HREF_BYTE * href + 11 * STRING_HEADER)?;
    [
        quirks::href(url),
        &quirks::origin(url),
        quirks::protocol(url),
        quirks::username(url),
        quirks::password(url),
        quirks::host(url),
        quirks::hostname(url),
        quirks::port(url),
        quirks::pathname(url),
        quirks::search(url),
        quirks::hash(url),
    ]
    .map(str::to_owned)
    .to_vec()
    .into_js(ctx)
}

/// Parses `input` against `base`; `None` when either fails to parse.
pub fn parse<'js>(ctx: Ctx<'js>, input: Usv, base: Opt<Usv>) -> Result<Option<Value<'js>>> {
    let base_length = base.0.as_ref().map_or(0, |base| base.0.len());
    let _parsed = memory::charge(
        &ctx,
        PARSED_PER_INPUT_BYTE.saturating_mul(input.0.len().saturating_add(2 * base_length)),
    )?;
    let base = match base.0 {
        Some(base) => match Url::parse(&base.0) {
            Ok(base) => Some(base),
            Err(_) => return Ok(None),
        },
        None => None,
    };
    let Ok(url) = Url::options().base_url(base.as_ref()).parse(&input.0) else {
        return Ok(None);
    };
    components(&ctx, &url).map(Some)
}

/// Applies the setter of component `index` (as in [`components`]) to `href`; `None` when
/// setting `href` fails to parse. Other setters ignore what they cannot use, per the standard.
pub fn set<'js>(ctx: Ctx<'js>, href: Usv, index: u32, value: Usv) -> Result<Option<Value<'js>>> {
    let _parsed = memory::charge(
        &ctx,
        PARSED_PER_INPUT_BYTE.saturating_mul(href.0.len().saturating_add(value.0.len())),
    )?;
    let Ok(mut url) = Url::parse(&href.0) else {
        return Err(fault::internal_error(
            &ctx,
            "a URL's own href did not parse",
        ));
    };
    let value = value.0.as_str();
    match index {
        0 => {
            if quirks::set_href(&mut url, value).is_err() {
                return Ok(None);
            }
        }
        2 => {
            let _ = quirks::set_protocol(&mut url, value);
        }
        3 => {
            let _ = quirks::set_username(&mut url, value);
        }
        4 => {
            let _ = quirks::set_password(&mut url, value);
        }
        5 => {
            let _ = quirks::set_host(&mut url, value);
        }
        6 => {
            let _ = quirks::set_hostname(&mut url, value);
        }
        7 => {
            let _ = quirks::set_port(&mut url, value);
        }
        8 => quirks::set_pathname(&mut url, value),
        9 => quirks::set_search(&mut url, value),
        10 => quirks::set_hash(&mut url, value),
        _ => return Err(fault::internal_error(&ctx, "no such URL component")),
    }
    components(&ctx, &url).map(Some)
}

/// The name-value pairs of an application/x-www-form-urlencoded string, flattened, as a
/// JavaScript array.
pub fn parse_query<'js>(ctx: Ctx<'js>, input: Usv) -> Result<Value<'js>> {
    let input = input.0.as_bytes();
    // A decoded byte takes at most three (an invalid one becomes U+FFFD); each pair is two
    // strings.
    let pairs = input.iter().filter(|byte| **byte == b'&').count() + 1;
    let _pairs = memory::charge(
        &ctx,
        input
            .len()
            .saturating_mul(3)
            .saturating_add(pairs * 2 * STRING_HEADER),
    )?;
    form_urlencoded::parse(input)
        .flat_map(|(name, value)| [name.into_owned(), value.into_owned()])
        .collect::<Vec<String>>()
        .into_js(&ctx)
}

/// The application/x-www-form-urlencoded serialization of flattened name-value pairs.
pub fn serialize_query<'js>(ctx: Ctx<'js>, pairs: Array<'js>) -> Result<rquickjs::String<'js>> {
    let mut serialized = memory::charge(&ctx, 0)?;
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let mut items = pairs.iter::<Usv>();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        let (name, value) = (name?, value?);
        // Each byte may become a three-byte percent-escape; `&` and `=` come between; the
        // string's capacity may have doubled as it grew.
        serialized.add(&ctx, 6 * (name.0.len() + value.0.len() + 2))?;
        serializer.append_pair(&name.0, &value.0);
    }
    rquickjs::String::from_str(ctx, &serializer.finish())
}
