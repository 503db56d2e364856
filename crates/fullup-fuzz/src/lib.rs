//! The properties fullup's fuzz targets check, one function per target, each taking
//! arbitrary bytes and panicking when a property fails (a panic inside the code under
//! test fails it too).
//!
//! They live in a workspace crate, not in the cargo-fuzz crate (`fuzz/`, outside the
//! workspace, built with a nightly toolchain), so that one piece of code serves both:
//! libFuzzer calls them from `fuzz/fuzz_targets/*.rs`, and this crate's tests replay
//! the committed corpora (`fuzz/corpus/<target>/`) and random inputs through them on
//! the stable toolchain, in CI, with `cargo test`.
//!
//! Inputs with several fields split the bytes at newlines ([`fields`]), so a corpus
//! file is readable and a seed easy to write by hand.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use fullup_server::api::events::CreateEvent;
use fullup_server::api::extract::parse_json;
use fullup_server::delivery::guard::{GuardError, Lookup, OutboundGuard};
use fullup_server::delivery::ssrf::{NetworkPolicy, denied_range, is_localhost_name};
use fullup_server::domain::canonical_json::canonicalize;
use fullup_server::domain::envelope::envelope;
use fullup_server::domain::event_type::EventType;
use fullup_server::domain::ids::EventId;
use fullup_server::domain::time::Timestamp;
use fullup_server::domain::webhook_url::WebhookUrl;
use fullup_signature::standard::StandardVerifier;
use fullup_signature::{Secret, Verifier, sign, sign_standard};
use serde_json::Value;

/// A target's property: panics when `data` breaks it.
pub type Property = fn(&[u8]);

/// The names of the targets, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/` spell them, with their functions.
pub const TARGETS: &[(&str, Property)] = &[
    ("signature_headers", signature_headers),
    ("canonical_json", canonical_json),
    ("webhook_url", webhook_url),
    ("address", address),
    ("ingest_body", ingest_body),
];

/// The secret every signature target signs and verifies with.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The first `N` newline-separated fields of `data` (missing ones empty), decoded
/// lossily as UTF-8, and the bytes after the `N`th newline (the body, if any).
pub fn fields<const N: usize>(data: &[u8]) -> ([String; N], &[u8]) {
    let mut rest = data;
    let fields = std::array::from_fn(|_| {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let field = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = rest.get(end + 1..).unwrap_or_default();
        field
    });
    (fields, rest)
}

/// Both signature schemes' header parsers on arbitrary values: `fullup-signature`,
/// `webhook-id`, `webhook-timestamp`, `webhook-signature`, then the body. Nothing
/// panics; a header that verifies is exactly the signature of the body (fullup scheme)
/// or holds one (Standard Webhooks); the service's own signatures always verify, also
/// beside any other entries.
pub fn signature_headers(data: &[u8]) {
    let ([fullup_header, msg_id, timestamp, standard_header], body) = fields::<4>(data);
    let secret = Secret::parse(SECRET).expect("the fuzz secret parses");
    let verifier = Verifier::new([secret.clone()]).expect("one secret");
    let signed = sign(&secret, body).to_string();
    if verifier.verify(Some(&fullup_header), body).is_ok() {
        assert!(
            fullup_header.trim_ascii().eq_ignore_ascii_case(&signed),
            "{fullup_header:?} verified but is not the body's signature {signed}"
        );
    }
    assert!(verifier.verify(Some(&signed), body).is_ok());

    let standard = StandardVerifier::new([secret.clone()]).expect("one secret");
    let now = 1_800_000_000;
    let parsed = standard.verify_at(
        Some(&msg_id),
        Some(&timestamp),
        Some(&standard_header),
        body,
        now,
    );
    if let Ok(verified) = parsed {
        let own = sign_standard(&secret, &msg_id, verified.timestamp, body);
        assert!(
            standard_header.split_ascii_whitespace().any(|e| e == own),
            "{standard_header:?} verified without holding {own}"
        );
    }
    if !msg_id.trim_ascii().is_empty() {
        let own = sign_standard(&secret, &msg_id, now, body);
        let beside = format!("{standard_header} {own}");
        let ts = now.to_string();
        let ok = standard.verify_at(Some(&msg_id), Some(&ts), Some(&beside), body, now);
        assert!(ok.is_ok(), "{beside:?}: {ok:?}");
    }
}

/// Canonical JSON: nothing panics; the output is a fixed point (canonicalizing it
/// again gives it back); and it parses equal to the input (serde_json's values, with
/// numbers compared as the doubles JavaScript reads).
pub fn canonical_json(data: &[u8]) {
    let Ok(canonical) = canonicalize(data) else {
        return;
    };
    let again = canonicalize(canonical.as_bytes()).expect("canonical output parses");
    assert_eq!(again.as_str(), canonical.as_str(), "not a fixed point");
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        // serde_json refuses what the canonicalizer took (nesting past its recursion
        // limit): nothing to compare with.
        return;
    };
    let output: Value = serde_json::from_str(canonical.as_str()).expect("output is JSON");
    assert!(
        same_value(&input, &output),
        "{} canonicalized to {} which parses differently",
        String::from_utf8_lossy(data),
        canonical.as_str()
    );
}

/// Equal JSON values, numbers compared as doubles (serde_json's default float parser
/// may be a unit in the last place off; JavaScript-canonical numbers are the shortest
/// spelling of the same double, so two ulps of tolerance separate a rounding from a
/// changed value).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().expect("a finite number"),
                y.as_f64().expect("a finite number"),
            );
            x == y || (x - y).abs() <= 2.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// A resolver that answers a public address for every name, so only the names' own
/// rules (names under `localhost`) can refuse them.
#[derive(Debug)]
struct PublicLookup;

#[async_trait::async_trait]
impl Lookup for PublicLookup {
    async fn lookup(&self, _host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(vec![IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34))])
    }
}

/// Webhook URLs: nothing panics parsing or vetting one; under the default policy,
/// with a resolver that calls every name public, a URL is refused exactly when its
/// host is an address in a denied range or a name under `localhost`.
pub fn webhook_url(data: &[u8]) {
    let Ok(url) = WebhookUrl::parse(&String::from_utf8_lossy(data)) else {
        return;
    };
    let guard = OutboundGuard::new(NetworkPolicy::default(), Arc::new(PublicLookup));
    let verdict = futures::executor::block_on(guard.vet(url.as_url()));
    let must_refuse = match url.as_url().host() {
        Some(url::Host::Ipv4(ip)) => denied_range(IpAddr::V4(ip)).is_some(),
        Some(url::Host::Ipv6(ip)) => denied_range(IpAddr::V6(ip)).is_some(),
        Some(url::Host::Domain(name)) => is_localhost_name(name),
        None => true,
    };
    match verdict {
        Err(GuardError::Blocked(_)) => assert!(must_refuse, "{url} refused: {verdict:?}"),
        Ok(_) => assert!(!must_refuse, "{url} allowed"),
        Err(other) => panic!("{url}: unexpected {other:?}"),
    }
}

/// The address classifier: the first 16 bytes as an IPv6 address and its first 4 as
/// IPv4. An IPv4 address is denied exactly when its IPv4-mapped and IPv4-compatible
/// IPv6 forms are; the default policy refuses exactly the denied addresses.
pub fn address(data: &[u8]) {
    let mut bytes = [0_u8; 16];
    let n = data.len().min(16);
    bytes[..n].copy_from_slice(&data[..n]);
    let v6 = Ipv6Addr::from(bytes);
    let v4 = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
    let denied = denied_range(IpAddr::V4(v4)).is_some();
    assert_eq!(
        denied_range(IpAddr::V6(v4.to_ipv6_mapped())).is_some(),
        denied,
        "{v4} mapped"
    );
    assert_eq!(
        denied_range(IpAddr::V6(v4.to_ipv6_compatible())).is_some(),
        denied,
        "{v4} compatible"
    );
    let policy = NetworkPolicy::default();
    for ip in [IpAddr::V4(v4), IpAddr::V6(v6)] {
        let refused = policy.check(std::net::SocketAddr::new(ip, 443)).is_err();
        assert_eq!(refused, denied_range(ip).is_some(), "{ip}");
    }
}

/// The ingest body, parsed as `POST /v1/sites/{site}/events` does: nothing panics, a
/// refused body is a client error (4xx, never 500), and an accepted one makes an
/// envelope that is JSON whose `type` and `data` are what was sent.
pub fn ingest_body(data: &[u8]) {
    let request: CreateEvent = match parse_json(data) {
        Ok(request) => request,
        Err(err) => {
            assert!(err.status.is_client_error(), "{err:?}");
            return;
        }
    };
    let Ok(event_type) = EventType::parse(&request.event_type) else {
        return;
    };
    let Ok(payload) = canonicalize(request.data.get().as_bytes()) else {
        return;
    };
    let at = Timestamp::from_unix_ms(1_800_000_000_000);
    let body = envelope(EventId::new(at), &event_type, at, &payload);
    let parsed: Value = serde_json::from_str(&body).expect("the envelope is JSON");
    assert_eq!(parsed["type"], event_type.as_str());
    let sent: Value = serde_json::from_str(request.data.get()).expect("data was JSON");
    assert!(
        same_value(&parsed["data"], &sent),
        "{body} does not carry {sent}"
    );
}
