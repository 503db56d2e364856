//! The receivers `docs/receiving.md` shows (issue 17, item 11), run as real processes.
//!
//! `testdata/receiving/{node,python}` hold the document's two programs; the first test
//! keeps the document and the files identical, so what runs here is what users copy. The
//! others check each answers as the document says: 200 for our signature over any bytes
//! (both verify the raw body, so no body needs to survive a JSON round trip), 400 for a
//! missing header, 403 for a wrong signature.

use fullup_signature::{SIGNATURE_HEADER, Secret, sign};
use fullup_testkit::{SeedKind, SeedReceiver, post};

const DOCUMENTED: [SeedKind; 2] = [SeedKind::DocumentedNode, SeedKind::DocumentedPython];

/// Bodies signed as sent, including ones `JSON.stringify(JSON.parse(b))` would change.
const BODIES: &[&str] = &[
    r#"{"type":"form.submitted","data":{"name":"Zoë","emoji":"🎉👍🏽"}}"#,
    r#"{"a": 1, "b": [1, 2]}"#,
    r#"{"url":"https:\/\/example.com","price":1.0,"count":1e3}"#,
    r#"{"b":1,"2":0,"escapes":"\u0001 \" \\"}"#,
];

fn secret() -> Secret {
    Secret::parse(fullup_testkit::SEED_SECRET).expect("the test secret is a valid secret")
}

/// POSTs `body` as JSON with an optional `fullup-signature` header; returns the status.
fn deliver(receiver: &SeedReceiver, signature: Option<&str>, body: &[u8]) -> u16 {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(signature.map(|signature| (SIGNATURE_HEADER, signature)));
    post(&receiver.url(), &headers, body).0
}

#[test]
fn the_document_shows_the_tested_receivers_verbatim() {
    let document = include_str!("../../../../docs/receiving.md");
    for (kind, fence) in DOCUMENTED.into_iter().zip(["javascript", "python"]) {
        let block = format!("```{fence}\n{}```", kind.source());
        assert!(
            document.contains(&block),
            "docs/receiving.md no longer shows the {kind} receiver as tested; copy \
             testdata/receiving's file into the document's ```{fence} block, or the other way"
        );
    }
}

fn answers_as_documented(kind: SeedKind) {
    let Some(receiver) = SeedReceiver::start(kind) else {
        return;
    };
    for body in BODIES {
        let signature = sign(&secret(), body.as_bytes()).to_string();
        assert_eq!(
            deliver(&receiver, Some(&signature), body.as_bytes()),
            200,
            "{kind} refused a correctly signed body: {body}\n{}",
            receiver.output()
        );
    }
    let body = BODIES[0].as_bytes();
    let wrong = Secret::parse("not_the_shared_secret_key").expect("a valid secret");
    let cases: [(&str, Option<String>, u16); 3] = [
        ("missing header", None, 400),
        ("wrong secret", Some(sign(&wrong, body).to_string()), 403),
        (
            "signature of another body",
            Some(sign(&secret(), BODIES[1].as_bytes()).to_string()),
            403,
        ),
    ];
    for (case, signature, expected) in cases {
        assert_eq!(
            deliver(&receiver, signature.as_deref(), body),
            expected,
            "{kind}: {case}\n{}",
            receiver.output()
        );
    }
}

#[test]
fn documented_node_answers_as_documented() {
    answers_as_documented(SeedKind::DocumentedNode);
}

#[test]
fn documented_python_answers_as_documented() {
    answers_as_documented(SeedKind::DocumentedPython);
}
