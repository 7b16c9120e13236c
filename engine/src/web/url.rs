//! The parsing side of `URL` and `URLSearchParams`: the WHATWG URL Standard's parser and its
//! setters (`url::quirks`, written for exactly these getters and setters) and the
//! application/x-www-form-urlencoded parser and serializer (`form_urlencoded`).
//!
//! A URL crosses to the script as its components, in the order of [`components`].

use rquickjs::{Ctx, Exception, Result, function::Opt};
use url::{Url, quirks};

use super::Usv;

/// `href`, `origin`, `protocol`, `username`, `password`, `host`, `hostname`, `port`,
/// `pathname`, `search`, `hash`.
fn components(url: &Url) -> Vec<String> {
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
}

/// Parses `input` against `base`; `None` when either fails to parse.
pub fn parse(input: Usv, base: Opt<Usv>) -> Option<Vec<String>> {
    let base = match base.0 {
        Some(base) => Some(Url::parse(&base.0).ok()?),
        None => None,
    };
    let url = Url::options()
        .base_url(base.as_ref())
        .parse(&input.0)
        .ok()?;
    Some(components(&url))
}

/// Applies the setter of component `index` (as in [`components`]) to `href`; `None` when
/// setting `href` fails to parse. Other setters ignore what they cannot use, per the standard.
pub fn set<'js>(ctx: Ctx<'js>, href: Usv, index: u32, value: Usv) -> Result<Option<Vec<String>>> {
    let Ok(mut url) = Url::parse(&href.0) else {
        return Err(Exception::throw_internal(
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
        _ => return Err(Exception::throw_internal(&ctx, "no such URL component")),
    }
    Ok(Some(components(&url)))
}

/// The name-value pairs of an application/x-www-form-urlencoded string, flattened.
pub fn parse_query(input: Usv) -> Vec<String> {
    form_urlencoded::parse(input.0.as_bytes())
        .flat_map(|(name, value)| [name.into_owned(), value.into_owned()])
        .collect()
}

/// The application/x-www-form-urlencoded serialization of flattened name-value pairs.
pub fn serialize_query(pairs: Vec<Usv>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for pair in pairs.chunks(2) {
        if let [name, value] = pair {
            serializer.append_pair(&name.0, &value.0);
        }
    }
    serializer.finish()
}
