//! The body every delivery carries: `{"id","type","created_at","data"}`, canonical.

use super::canonical_json::{CanonicalJson, write_js_string};
use super::event_type::EventType;
use super::ids::EventId;
use super::time::Timestamp;

/// Builds the envelope of an event.
///
/// The keys are not integer-like and appear in JavaScript's insertion order, and `data`
/// is already canonical, so the result is itself a fixed point of
/// `JSON.stringify(JSON.parse(..))`.
pub fn envelope(
    id: EventId,
    event_type: &EventType,
    created_at: Timestamp,
    data: &CanonicalJson,
) -> String {
    let event_type = event_type.as_str();
    let mut out = String::with_capacity(data.as_str().len() + event_type.len() + 96);
    out.push_str("{\"id\":");
    write_js_string(&mut out, &id.to_string());
    out.push_str(",\"type\":");
    write_js_string(&mut out, event_type);
    out.push_str(",\"created_at\":");
    write_js_string(&mut out, &created_at.to_rfc3339());
    out.push_str(",\"data\":");
    out.push_str(data.as_str());
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::canonical_json::canonicalize;

    #[test]
    fn envelope_is_canonical_and_ordered() {
        let id = EventId::new(Timestamp::EPOCH);
        let data = canonicalize(br#"{"b": 1, "0": "x"}"#).expect("valid");
        let body = envelope(
            id,
            &EventType::parse("form.submitted").expect("type"),
            Timestamp::from_unix_ms(1_700_000_000_123),
            &data,
        );
        assert_eq!(
            body,
            format!(
                r#"{{"id":"{id}","type":"form.submitted","created_at":"2023-11-14T22:13:20.123Z","data":{{"0":"x","b":1}}}}"#
            )
        );
        let again = canonicalize(body.as_bytes()).expect("valid");
        assert_eq!(again.as_str(), body);
    }
}
