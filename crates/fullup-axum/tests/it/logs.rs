//! Secrets and bodies never reach the logs, whatever the outcome.

use std::io;
use std::sync::{Arc, Mutex};

use tower::{Layer as _, ServiceExt as _};

use crate::extract::app;
use crate::{NEW_SECRET, SECRET, secret, signed};

/// Everything the subscriber writes, kept for inspection.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const MARKER: &str = "PAYLOAD-MARKER-7f3a";

fn body(text: &str) -> &'static [u8] {
    Box::leak(text.replace("{}", MARKER).into_bytes().into_boxed_slice())
}

#[tokio::test]
async fn secrets_and_bodies_never_appear_in_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = fullup_axum::VerifyConfig::new([secret(SECRET), secret(NEW_SECRET)])
        .expect("two secrets")
        .allow_untimestamped();
    let requests = [
        crate::extract::to("/event", signed(body("{\"type\":\"{}\"}"), NEW_SECRET)),
        crate::extract::to("/event", signed(body("{\"type\": {}"), SECRET)),
        crate::extract::to("/typed", signed(body("{\"amount\":\"{}\"}"), SECRET)),
        crate::extract::to("/text", signed(body("{}"), "wrong_secret")),
        signed(body("{} {} {}"), SECRET),
    ];
    for request in requests {
        // Other tests of this binary, on other threads, may register a log callsite
        // while this thread's subscriber is being set, and tracing then caches "no
        // subscriber wants it" for that callsite; under load that lost the rejection
        // lines now and then. Recomputing the cache before each request removes the race.
        tracing::callsite::rebuild_interest_cache();
        let limited = app(config.clone().with_body_limit(40));
        limited.oneshot(request).await.expect("infallible");
    }
    tracing::callsite::rebuild_interest_cache();
    let layered = fullup_axum::VerifyLayer::new(config).layer(app(crate::body_only()));
    layered
        .oneshot(signed(body("{}"), "wrong_secret"))
        .await
        .expect("infallible");

    let logs =
        String::from_utf8(capture.0.lock().expect("not poisoned").clone()).expect("utf-8 logs");
    assert!(logs.contains("webhook verified"), "capture works: {logs}");
    for code in ["signature_mismatch", "invalid_json", "body_too_large"] {
        assert!(logs.contains(code), "rejection {code} is logged: {logs}");
    }
    for forbidden in [SECRET, NEW_SECRET, MARKER] {
        assert!(
            !logs.contains(forbidden),
            "{forbidden:?} leaked into logs:\n{logs}"
        );
    }
}
