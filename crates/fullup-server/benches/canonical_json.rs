//! Cost of making an event payload JavaScript-canonical, next to serde_json's parse +
//! serialize round trip on the same bytes for reference.
//!
//! Run: `cargo bench -p fullup-server --bench canonical_json -j2`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use fullup_server::domain::canonical_json::canonicalize;
use serde_json::json;

/// One form submission as clients typically send it: nested objects, non-ASCII text,
/// escapes, a few numbers, pretty-printed. About 1 KiB.
fn submission(n: usize) -> serde_json::Value {
    json!({
        "form": { "id": format!("frm_01HZX3KQ{n:08}"), "name": "Contact us — Europe" },
        "submission": {
            "id": format!("sub_01HZX3M9{n:08}"),
            "submitted_at": "2024-05-17T09:41:27.512Z",
            "fields": {
                "name": "Zoë Müller-Łukasiewicz",
                "email": "zoe@example.com",
                "company": "Example GmbH",
                "message": "Hello,\nwe'd like a quote for 3 seats.\n\"Urgent\" — before Friday 🙏\tThanks!",
                "consent": true,
                "budget": 1500.5,
                "seats": 3,
                "source": null,
                "interests": ["webhooks", "forms", "integrations"],
            },
        },
        "meta": {
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            "referrer": "https://www.example.com/contact?utm_source=newsletter&utm_medium=email",
            "locale": "de-DE",
            "score": 0.87,
        },
    })
}

/// `{"items":[..]}` holding as many submissions as it takes to reach `min_len` bytes.
fn payload(min_len: usize) -> Vec<u8> {
    let mut items = vec![submission(0)];
    loop {
        let bytes = serde_json::to_vec_pretty(&json!({ "items": items })).expect("serializes");
        if bytes.len() >= min_len {
            return bytes;
        }
        items.push(submission(items.len()));
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("canonical_json");
    let typical = serde_json::to_vec_pretty(&submission(0)).expect("serializes");
    for (name, input) in [("1KiB", typical), ("64KiB", payload(64 * 1024))] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("canonicalize", name),
            &input,
            |b, input| {
                b.iter(|| canonicalize(input).expect("valid payload"));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("serde_json_round_trip", name),
            &input,
            |b, input| {
                b.iter(|| {
                    let value: serde_json::Value =
                        serde_json::from_slice(input).expect("valid payload");
                    serde_json::to_vec(&value).expect("serializes")
                });
            },
        );
    }
    group.finish();
}

/// `criterion_group!` defines an undocumented `pub fn`; a private module keeps it internal.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
