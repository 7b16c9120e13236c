//! Scripts loaded from a URL or a bucket: `{"url": "gs://bucket/a.js"}`, `s3://`, `https://`
//! (and `http://` where the tenant's allow-list names it), optionally pinned with `sha256`.
//!
//! The ingress parses the request with the contract's one parser, loads a
//! [`ScriptSource::Url`] and forwards the request with the script as [`ScriptSource::Code`]
//! ([`Loader::rewrite`], and [`Loader::resolve`] for a batch the proxy has parsed): the bucket
//! credentials stay with the ingress, and the sandbox needs no route out for it (under Compose
//! it has none unless a tenant is granted `fetch`). Only a `POST /api/execute` JSON body that
//! could name a `url`, or a `POST /api/batch` JSON body, is parsed; any other body goes through
//! untouched, and a body the ingress does not rewrite (invalid, or not JSON) still cannot run a
//! `url` unloaded: the sandbox, parsing it the same way, refuses it with the same message or
//! refuses `url` with 422.
//!
//! - Who may load what: each tier's `sources` in the tenants file ([`rules`]); nothing by
//!   default.
//! - Where connections may go: web sources use the `egress` client, whose resolver refuses
//!   blocked addresses when connecting and whose redirect policy re-checks every hop against
//!   the address rules and the tier's allow-list; GCS and S3 (through `object_store`, with
//!   each platform's standard credentials) use the same resolver. Loopback only with the
//!   test-only `SOURCES_ALLOW_LOOPBACK`.
//! - Bounds: at most `MAX_SCRIPT_BYTES` of script (streamed, stopped at the cap, and counted
//!   again once JSON-escaped, as the sandbox receives it), within
//!   `SOURCE_TIMEOUT_MS`; a byte-bounded cache ([`cache`]) revalidated after
//!   `SOURCE_CACHE_TTL_MS` with a conditional request. A download and the rewritten request
//!   are charged to the ingress's memory budget as they grow (503 when it is full).
//! - A cached script is served to a tier only if its own rules accept every hop that loading
//!   it took (the redirects are stored with it); otherwise the tier loads it itself.
//! - What a failed load answers: [`SourceError`].

pub mod cache;
mod error;
pub mod rules;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use contract::request::{ExecuteRequest, ScriptRequest, ScriptSource};
use egress::AddressPolicy;
use egress::client::CheckedResolver;
use futures_util::StreamExt;
use object_store::client::{DnsError, DnsFuture, DnsResolver};
use object_store::{BackoffConfig, ClientOptions, GetOptions, ObjectStore, RetryConfig};
use service_kit::{Charge, MemoryBudget, telemetry::traces};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::body::Buffered;
use cache::{Cache, Lookup, Script};
pub use error::{Problem, SourceError};
use error::{internal, store_problem, web_problem};
use rules::{Location, SourceRules, Store};

/// The loader's settings, from the environment (see [`crate::config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `SOURCE_TIMEOUT_MS`: the whole load, connection to last byte.
    pub timeout: Duration,
    /// `SOURCE_CACHE_BYTES`: the cache's bound; 0 turns caching off.
    pub cache_bytes: usize,
    /// `SOURCE_CACHE_TTL_MS`: how long a cached script is used before it is revalidated.
    pub cache_ttl: Duration,
    /// `SOURCES_ALLOW_LOOPBACK`: tests only.
    pub allow_loopback: bool,
    /// `SOURCES_GCS_ENDPOINT`: an emulator's base URL (no credentials are sent to it).
    pub gcs_endpoint: Option<String>,
    /// `SOURCES_S3_ENDPOINT`: an S3-compatible endpoint, path-style requests.
    pub s3_endpoint: Option<String>,
    /// `MAX_SCRIPT_BYTES`: the largest script a `url` may load, counted as the JSON-escaped
    /// text the sandbox receives as `code` (a quote or newline takes two bytes there). The
    /// default leaves 128 KiB of the sandbox's default `MAX_BODY_BYTES` (1 MiB) for `input`
    /// (at most `MAX_INPUT_BYTES`, 64 KiB) and the other fields, so any script the ingress
    /// accepts reaches the engine.
    pub max_script_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            cache_bytes: 64 * 1024 * 1024,
            cache_ttl: Duration::from_secs(60),
            allow_loopback: false,
            gcs_endpoint: None,
            max_script_bytes: 896 * 1024,
            s3_endpoint: None,
        }
    }
}

impl Settings {
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy {
            allow_loopback: self.allow_loopback,
        }
    }
}

/// Loads scripts for the tiers, with a cache shared by all of them (each load is checked
/// against the tier's rules before the cache is consulted).
pub struct Loader {
    settings: Settings,
    max_bytes: usize,
    cache: Cache,
    /// The ingress's buffer budget, charged by downloads while they grow.
    budget: Arc<MemoryBudget>,
    /// One web client per tier: its redirect policy carries the tier's allow-list.
    web_clients: Mutex<HashMap<Arc<str>, reqwest::Client>>,
    stores: Mutex<HashMap<(Store, String), Arc<dyn ObjectStore>>>,
    /// The locations being loaded, each with the lock its loaders queue on.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The result of one request to a source, with the locations its redirects led to.
enum Fetched {
    Full(Vec<u8>, Option<String>, Vec<Location>),
    NotModified(Vec<Location>),
}

tokio::task_local! {
    /// The redirects followed by the web request in progress on this task, as its tier's
    /// redirect policy accepts them (reqwest follows them while the request's future is polled).
    static HOPS: std::cell::RefCell<Vec<Location>>;
}

impl Loader {
    /// A loader with `settings`, taking scripts of at most `MAX_SCRIPT_BYTES` and charging
    /// them to `budget` while they download.
    pub fn new(settings: Settings, budget: Arc<MemoryBudget>) -> Self {
        Self {
            budget,
            cache: Cache::new(settings.cache_bytes, settings.cache_ttl),
            max_bytes: settings.max_script_bytes,
            settings,
            web_clients: Mutex::default(),
            stores: Mutex::default(),
            in_flight: Mutex::default(),
        }
    }

    /// For a JSON `POST /api/execute`: when `body` is a valid request for a script at a `url`,
    /// the same request with the loaded script as `code`, its bytes charged to `charge` before
    /// they are written; otherwise `body` unchanged (the sandbox answers).
    pub async fn rewrite(
        &self,
        tier: &Arc<str>,
        rules: &Arc<SourceRules>,
        buffered: Buffered,
        charge: &mut Charge,
    ) -> Result<Buffered, SourceError> {
        if !might_name_url(&buffered) {
            return Ok(buffered);
        }
        let body = buffered.contiguous(charge).map_err(|refused| SourceError {
            name: None,
            problem: Problem::OverBudget(refused),
        })?;
        // The sandbox parses what is not a request for a `url` script, and says what is wrong
        // with it in the same words.
        let Ok(request) = ExecuteRequest::parse(&body) else {
            return Ok(buffered);
        };
        let loaded = self
            .resolve(tier, rules, request, body.len(), charge)
            .await?;
        Ok(loaded.unwrap_or(buffered))
    }

    /// For a parsed request (of `body_length` bytes) that names a `url`: the same request
    /// with the loaded script as `code`, as the body to forward, its bytes charged to `charge`
    /// before they are written; `None` when it names no `url`.
    pub async fn resolve<R: ScriptRequest>(
        &self,
        tier: &Arc<str>,
        rules: &Arc<SourceRules>,
        mut request: R,
        body_length: usize,
        charge: &mut Charge,
    ) -> Result<Option<Buffered>, SourceError> {
        let ScriptSource::Url { url, sha256 } = request.source_mut() else {
            return Ok(None);
        };
        let (url, sha256) = (url.clone(), sha256.clone());
        let (script, location) = self.load(tier, rules, &url).await?;
        if let Some(pinned) = sha256 {
            let actual = hex(&script.digest);
            if actual != pinned.as_str() {
                return Err(SourceError::at(
                    &location,
                    Problem::HashMismatch {
                        actual,
                        pinned: pinned.as_str().to_owned(),
                    },
                ));
            }
        }
        // The script, then the new request with it escaped: at most twice the script (escapes
        // beyond that are rare) and the rest of the request.
        charge
            .grow(2 * script.code.len() + body_length)
            .map_err(|refused| SourceError::at(&location, Problem::OverBudget(refused)))?;
        // The download stopped at the cap in raw bytes; the sandbox receives the escaped text,
        // which the cap bounds too, so that it fits the sandbox's body limit beside the rest of
        // the request.
        if escaped_length(&script.code) > self.max_bytes {
            return Err(SourceError::at(
                &location,
                Problem::TooLarge(self.max_bytes),
            ));
        }
        *request.source_mut() = ScriptSource::Code(script.code.to_string());
        // With an oversized `input` it may pass the sandbox's MAX_BODY_BYTES, which then
        // answers 413 itself.
        let rewritten = serde_json::to_vec(&request).map_err(|_| internal(&location))?;
        tracing::debug!(source = %location, bytes = script.code.len(), "script loaded");
        Ok(Some(Buffered::from(Bytes::from(rewritten))))
    }

    /// The script at `url`, if `tier` may load it: from the cache within the TTL, revalidated
    /// after it, downloaded otherwise.
    async fn load(
        &self,
        tier: &Arc<str>,
        rules: &Arc<SourceRules>,
        url: &str,
    ) -> Result<(Arc<Script>, Location), SourceError> {
        let span = traces::span(|| {
            tracing::info_span!(
                "source_load",
                tenant.id = &**tier,
                source.cache = tracing::field::Empty,
                refusal.reason = tracing::field::Empty,
            )
        });
        let loaded = self
            .load_in_span(tier, rules, url)
            .instrument(span.clone())
            .await;
        if let Err(error) = &loaded {
            span.record("refusal.reason", error.kind().as_str());
        }
        loaded
    }

    async fn load_in_span(
        &self,
        tier: &Arc<str>,
        rules: &Arc<SourceRules>,
        url: &str,
    ) -> Result<(Arc<Script>, Location), SourceError> {
        // A tier that may load nothing is told so whatever the URL looks like.
        if rules.0.is_empty() {
            return Err(SourceError {
                name: None,
                problem: Problem::Forbidden(format!(
                    "tenant {tier} may not load scripts from URLs (its `sources` list is empty)"
                )),
            });
        }
        let location = Location::parse(url).map_err(|reason| SourceError {
            name: None,
            problem: Problem::Invalid(reason),
        })?;
        rules
            .check(tier, &location)
            .map_err(|reason| SourceError::at(&location, Problem::Forbidden(reason)))?;
        if let Location::Web(url) = &location {
            egress::client::check_url(url, self.settings.address_policy()).map_err(|error| {
                SourceError::at(&location, Problem::Forbidden(error.to_string()))
            })?;
        }
        let key = location.cache_key();
        if let Lookup::Fresh(script) = self.cache.get(&key)
            && accepts_hops(tier, rules, &script)
        {
            tracing::Span::current().record("source.cache", "hit");
            return Ok((script, location));
        }
        tracing::Span::current().record("source.cache", "miss");
        let refresh = self.refresh(tier, rules, &location, &key);
        let script = tokio::time::timeout(self.settings.timeout, refresh)
            .await
            .map_err(|_| Problem::TimedOut(self.settings.timeout))
            .and_then(|loaded| loaded)
            .map_err(|problem| match problem {
                Problem::TimedOut(_) => Problem::TimedOut(self.settings.timeout),
                problem => problem,
            })
            .map_err(|problem| SourceError::at(&location, problem))?;
        Ok((script, location))
    }

    /// Loads or revalidates the script at `location` into the cache under `key`. One load per
    /// location at a time: requests arriving meanwhile wait for it (within their own timeout)
    /// and take its result from the cache.
    async fn refresh(
        &self,
        tier: &Arc<str>,
        rules: &Arc<SourceRules>,
        location: &Location,
        key: &str,
    ) -> Result<Arc<Script>, Problem> {
        let flight = Flight::join(self, key);
        let _turn = flight.lock.lock().await;
        // What another tier loaded through redirects this one may not follow is not this
        // tier's to use, not even to revalidate: it loads the script itself, with its own rules
        // at every hop, and the cache then holds that load.
        let stale = match self.cache.get(key) {
            Lookup::Fresh(script) if accepts_hops(tier, rules, &script) => return Ok(script),
            Lookup::Stale(script) if accepts_hops(tier, rules, &script) => Some(script),
            Lookup::Fresh(_) | Lookup::Stale(_) | Lookup::Missing => None,
        };
        let etag = stale.as_ref().and_then(|script| script.etag.clone());
        let script = match (self.fetch(tier, rules, location, etag).await?, stale) {
            (Fetched::NotModified(hops), Some(stale)) => Arc::new(Script {
                code: stale.code.clone(),
                digest: stale.digest,
                etag: stale.etag.clone(),
                hops,
            }),
            (Fetched::NotModified(_), None) => {
                return Err(Problem::Unavailable {
                    reason: "the server answered 304 to an unconditional request".to_owned(),
                    detail: "304 without If-None-Match".to_owned(),
                });
            }
            (Fetched::Full(bytes, etag, hops), _) => {
                let digest = Sha256::digest(&bytes).into();
                let code = String::from_utf8(bytes).map_err(|_| Problem::NotText)?;
                Arc::new(Script {
                    code: Arc::from(code),
                    digest,
                    etag,
                    hops,
                })
            }
        };
        self.cache.put(key.to_owned(), script.clone());
        Ok(script)
    }

    async fn fetch(
        &self,
        tier: &Arc<str>,
        rules: &Arc<SourceRules>,
        location: &Location,
        etag: Option<String>,
    ) -> Result<Fetched, Problem> {
        match location {
            Location::Web(url) => self.fetch_web(tier, rules, url, etag).await,
            Location::Object { store, bucket, key } => {
                self.fetch_object(*store, bucket, key, etag).await
            }
        }
    }

    async fn fetch_web(
        &self,
        tier: &Arc<str>,
        rules: &Arc<SourceRules>,
        url: &url::Url,
        etag: Option<String>,
    ) -> Result<Fetched, Problem> {
        let client = self.web_client(tier, rules)?;
        let mut request = client.get(url.clone());
        if let Some(etag) = &etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let (sent, hops) = HOPS
            .scope(std::cell::RefCell::default(), async {
                let sent = request.send().await;
                (sent, HOPS.with(std::cell::RefCell::take))
            })
            .await;
        let mut response = sent.map_err(web_problem)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified(hops));
        }
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Err(Problem::NotFound);
        }
        if status != StatusCode::OK {
            return Err(Problem::Unavailable {
                reason: format!("the server answered {status}"),
                detail: format!("status {status}"),
            });
        }
        if response
            .content_length()
            .is_some_and(|length| length > self.max_bytes as u64)
        {
            return Err(Problem::TooLarge(self.max_bytes));
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        let mut charge = self.budget.charge(0).map_err(Problem::OverBudget)?;
        while let Some(chunk) = response.chunk().await.map_err(web_problem)? {
            if bytes.len() + chunk.len() > self.max_bytes {
                return Err(Problem::TooLarge(self.max_bytes));
            }
            charge.grow(chunk.len()).map_err(Problem::OverBudget)?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Full(bytes, etag, hops))
    }

    async fn fetch_object(
        &self,
        store: Store,
        bucket: &str,
        key: &str,
        etag: Option<String>,
    ) -> Result<Fetched, Problem> {
        let client = self.store(store, bucket)?;
        let path = object_store::path::Path::parse(key)
            .map_err(|error| Problem::Invalid(error.to_string()))?;
        let options = GetOptions {
            if_none_match: etag,
            ..GetOptions::default()
        };
        let result = match client.get_opts(&path, options).await {
            Ok(result) => result,
            // Stores answer at the object's own location: no hops.
            Err(object_store::Error::NotModified { .. }) => {
                return Ok(Fetched::NotModified(Vec::new()));
            }
            Err(error) => return Err(store_problem(error)),
        };
        if result.meta.size > self.max_bytes as u64 {
            return Err(Problem::TooLarge(self.max_bytes));
        }
        let etag = result.meta.e_tag.clone();
        let mut stream = result.into_stream();
        let mut bytes = Vec::new();
        let mut charge = self.budget.charge(0).map_err(Problem::OverBudget)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(store_problem)?;
            if bytes.len() + chunk.len() > self.max_bytes {
                return Err(Problem::TooLarge(self.max_bytes));
            }
            charge.grow(chunk.len()).map_err(Problem::OverBudget)?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Full(bytes, etag, Vec::new()))
    }

    /// The tier's web client: the egress client, with redirects re-checked against the
    /// address rules and the tier's own allow-list at every hop.
    fn web_client(
        &self,
        tier: &Arc<str>,
        rules: &Arc<SourceRules>,
    ) -> Result<reqwest::Client, Problem> {
        let mut clients = self.web_clients.lock().expect("never poisoned");
        if let Some(client) = clients.get(tier) {
            return Ok(client.clone());
        }
        let policy = self.settings.address_policy();
        let (allowed, name) = (rules.clone(), tier.clone());
        let client = egress::client::client_builder(policy)
            .redirect(egress::client::redirect_policy(policy, move |url| {
                let location = Location::parse(url.as_str())?;
                allowed.check(&name, &location)?;
                // Outside a load (never, today) there is nothing to record the hop in.
                let _ = HOPS.try_with(|hops| hops.borrow_mut().push(location));
                Ok(())
            }))
            .timeout(self.settings.timeout)
            .build()
            .map_err(|error| Problem::Unavailable {
                reason: "the ingress could not make an HTTP client".to_owned(),
                detail: error.to_string(),
            })?;
        clients.insert(tier.clone(), client.clone());
        Ok(client)
    }

    /// The client of `bucket`, made on first use with the platform's standard credentials
    /// (or for the configured emulator endpoint).
    fn store(&self, store: Store, bucket: &str) -> Result<Arc<dyn ObjectStore>, Problem> {
        let mut stores = self.stores.lock().expect("never poisoned");
        if let Some(client) = stores.get(&(store, bucket.to_owned())) {
            return Ok(client.clone());
        }
        let unavailable = |error: object_store::Error| Problem::Unavailable {
            reason: "the ingress could not set up a client for the store".to_owned(),
            detail: error.to_string(),
        };
        let resolver = CheckedDns(CheckedResolver {
            policy: self.settings.address_policy(),
        });
        let mut options = ClientOptions::new()
            .with_timeout(self.settings.timeout)
            .with_connect_timeout(self.settings.timeout)
            .with_dns_resolver(Arc::new(resolver));
        let retry = RetryConfig {
            max_retries: 1,
            retry_timeout: self.settings.timeout,
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
                base: 2.0,
            },
        };
        let client: Arc<dyn ObjectStore> = match store {
            Store::Gcs => {
                let builder = match &self.settings.gcs_endpoint {
                    None => object_store::gcp::GoogleCloudStorageBuilder::from_env(),
                    Some(endpoint) => {
                        options = options.with_allow_http(endpoint.starts_with("http://"));
                        object_store::gcp::GoogleCloudStorageBuilder::new()
                            .with_service_account_key(emulator_key(endpoint))
                    }
                };
                Arc::new(
                    builder
                        .with_bucket_name(bucket)
                        .with_client_options(options)
                        .with_retry(retry)
                        .build()
                        .map_err(unavailable)?,
                )
            }
            Store::S3 => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env();
                if let Some(endpoint) = &self.settings.s3_endpoint {
                    options = options.with_allow_http(endpoint.starts_with("http://"));
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                Arc::new(
                    builder
                        .with_bucket_name(bucket)
                        .with_client_options(options)
                        .with_retry(retry)
                        .build()
                        .map_err(unavailable)?,
                )
            }
        };
        stores.insert((store, bucket.to_owned()), client.clone());
        Ok(client)
    }
}

/// A load of one location in progress: its lock, forgotten when the last loader is done.
struct Flight<'a> {
    loader: &'a Loader,
    key: &'a str,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Flight<'a> {
    fn join(loader: &'a Loader, key: &'a str) -> Self {
        let mut flights = loader.in_flight.lock().expect("never poisoned");
        let lock = flights.entry(key.to_owned()).or_default().clone();
        Self { loader, key, lock }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flights = self.loader.in_flight.lock().expect("never poisoned");
        // The map's reference and this one: nobody else holds or waits for the lock (others
        // take theirs under the map's lock).
        if Arc::strong_count(&self.lock) <= 2 {
            flights.remove(self.key);
        }
    }
}

/// object_store's own key format for a GCS emulator: its base URL, and no OAuth (the private
/// key is never used).
fn emulator_key(endpoint: &str) -> String {
    serde_json::json!({
        "gcs_base_url": endpoint.trim_end_matches('/'),
        "disable_oauth": true,
        "client_email": "emulator@example.invalid",
        "private_key": "unused",
        "private_key_id": "unused",
    })
    .to_string()
}

/// The egress resolver, for object_store's clients.
#[derive(Debug)]
struct CheckedDns(CheckedResolver);

impl DnsResolver for CheckedDns {
    fn resolve(&self, host: &str) -> DnsFuture {
        let (resolver, host) = (self.0, host.to_owned());
        Box::pin(async move {
            resolver
                .resolve_checked(&host)
                .await
                .map_err(|error| Box::new(error) as DnsError)
        })
    }
}

/// A cheap test that keeps most bodies from being parsed: a `url` key is written `"url"`,
/// or with an escape (`"\u0075rl"`).
fn might_name_url(body: &Buffered) -> bool {
    body.contains(b"\"url\"") || body.contains(b"\\u")
}

/// `Content-Type: application/json` or `application/*+json`, as the sandbox accepts; other
/// bodies are the sandbox's to refuse (415).
pub fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(contract::api::is_json_content_type)
}

/// Whether `tier`'s rules accept every location loading `script` was redirected to.
fn accepts_hops(tier: &str, rules: &SourceRules, script: &Script) -> bool {
    script.hops.iter().all(|hop| rules.check(tier, hop).is_ok())
}

/// Bytes of `text` as a JSON string, without its quotes.
fn escaped_length(text: &str) -> usize {
    /// Counts what is written to it.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, text).expect("counting cannot fail");
    counter.0 - 2
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodies_that_could_name_a_url_are_parsed() {
        let body = |text: &'static [u8]| Buffered::from(Bytes::from_static(text));
        assert!(might_name_url(&body(br#"{"url": "gs://b/a.js"}"#)));
        assert!(might_name_url(&body(br#"{"\u0075rl": "gs://b/a.js"}"#)));
        assert!(!might_name_url(&body(br#"{"code": "const url = 1"}"#)));
    }

    #[test]
    fn a_script_is_measured_as_the_escaped_text_the_sandbox_receives() {
        assert_eq!(escaped_length("abc"), 3);
        assert_eq!(escaped_length("a\"b\n"), 6);
        assert_eq!(escaped_length("\u{e9}"), 2);
    }

    #[test]
    fn the_digest_is_written_in_lowercase_hex() {
        // printf %s test | sha256sum
        assert_eq!(
            hex(&Sha256::digest(b"test")),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
