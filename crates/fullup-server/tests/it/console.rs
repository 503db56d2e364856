//! The console over HTTP, on both stores: signing in, CSRF and origin checks, the
//! security headers, escaping, and portal links (one-time tokens, sessions that reach
//! their own site only). The browser drives the same pages in `tests/browser.rs`.

mod portal;
mod window;

use std::collections::BTreeMap;

use reqwest::Method;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::support::server::ADMIN_TOKEN;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

/// A browser in miniature: keeps the console's cookies, follows no redirect, and
/// sends `Origin` like a browser posting a form of the page's own origin.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// An answer: status, headers and body text.
pub struct Page {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: String,
}

impl Page {
    /// The `Location` of a redirect.
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no Location in a {} answer", self.status))
    }

    /// The value of the first hidden `csrf` field of the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let len = self.body[start..].find('"').expect("end of the value");
        self.body[start..start + len].to_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

impl Browser {
    /// A browser without cookies, on `server`.
    pub fn new(server: &TestServer) -> Self {
        Self {
            base: server.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        origin: Option<&str>,
    ) -> Page {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let cookie: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", cookie.join("; "));
        }
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        if let Some(form) = form {
            req = req.form(form);
        }
        let resp = req.send().await.expect("request");
        for set in resp.headers().get_all(SET_COOKIE) {
            let set = set.to_str().expect("ASCII cookie");
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Page {
            status,
            headers,
            body: resp.text().await.expect("body"),
        }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, None).await
    }

    /// Posts `form` from the console's own origin.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = self.base.clone();
        self.send(Method::POST, path, Some(form), Some(&origin))
            .await
    }

    /// Posts `form` with the `Origin` header `origin`.
    pub async fn post_from(&mut self, origin: &str, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form), Some(origin))
            .await
    }

    /// Signs in with the admin token.
    pub async fn sign_in(&mut self) {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        let done = self
            .post(
                "/console/sign-in",
                &[("csrf", &csrf), ("token", ADMIN_TOKEN)],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert_eq!(done.location(), "/console/");
    }
}

/// Asserts the security headers every console page carries; `framable` for portal
/// pages under the default `--portal-frame-ancestors` (none).
pub fn assert_security_headers(page: &Page) {
    let csp = page.header("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    assert_eq!(page.header("cache-control"), "no-store");
}

/// The operator signs in and manages a webhook through forms; every form needs its
/// token and this origin, and what receivers and users wrote is escaped.
async fn sign_in_csrf_and_forms(backend: Backend) {
    let server = backend.start().await;
    let receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let mut browser = Browser::new(&server);

    // Not signed in: every page leads to the sign-in form.
    let home = browser.get("/console/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location(), "/console/sign-in");
    assert_eq!(browser.get("/").await.location(), "/console/");

    // Login CSRF: the sign-in form needs its own token, and this origin.
    let form = browser.get("/console/sign-in").await;
    assert_security_headers(&form);
    assert_eq!(form.header("x-frame-options"), "DENY");
    let csrf = form.csrf();
    let refused = browser
        .post("/console/sign-in", &[("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(refused.status, 403, "no token: {}", refused.body);
    let refused = browser
        .post_from(
            "https://evil.example",
            "/console/sign-in",
            &[("csrf", &csrf), ("token", ADMIN_TOKEN)],
        )
        .await;
    assert_eq!(refused.status, 403, "another origin: {}", refused.body);
    let wrong = browser
        .post(
            "/console/sign-in",
            &[("csrf", &csrf), ("token", "not-the-token")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(
        browser.get("/console/").await.status == 303,
        "still signed out"
    );
    browser.sign_in().await;

    let home = browser.get("/console/").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains(&site), "the sites page lists the site");
    assert_security_headers(&home);

    // Creating a webhook: refused without the token or from another origin.
    let new = browser
        .get(&format!("/console/sites/{site}/webhooks/new"))
        .await;
    assert_eq!(new.status, 200, "{}", new.body);
    let csrf = new.csrf();
    let description = "<script>window.__xss=1</script>\"><img src=x onerror=alert(1)>";
    let url = receiver.url();
    let fields = |csrf: &str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", csrf.to_owned()),
            ("url", url.clone()),
            ("event_types", "*".to_owned()),
            ("description", description.to_owned()),
        ]
    };
    let create = format!("/console/sites/{site}/webhooks");
    let posted = browser.post(&create, &pairs(&fields("")[1..])).await;
    assert_eq!(posted.status, 403, "no token: {}", posted.body);
    let with_token = fields(&csrf);
    let posted = browser
        .post_from("http://127.0.0.1:1", &create, &pairs(&with_token))
        .await;
    assert_eq!(posted.status, 403, "another origin: {}", posted.body);
    let posted = browser
        .post(&create, &pairs(&fields(&"A".repeat(43))))
        .await;
    assert_eq!(posted.status, 403, "a wrong token: {}", posted.body);
    let (status, body) = server
        .call(Method::GET, &format!("/v1/sites/{site}/webhooks"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"].as_array().expect("data").len(),
        0,
        "nothing was created"
    );

    let created = browser.post(&create, &pairs(&with_token)).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let webhook_page = browser.get(created.location()).await;
    assert_eq!(webhook_page.status, 200, "{}", webhook_page.body);
    assert!(
        webhook_page
            .body
            .contains("&lt;script&gt;window.__xss=1&lt;/script&gt;&quot;&gt;&lt;img"),
        "the description is escaped"
    );
    assert!(
        !webhook_page.body.contains("<script>window"),
        "no markup from the description"
    );

    // Pause, then the API sees it paused: the console called the same use case.
    let webhook = created
        .location()
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    let paused = browser
        .post(
            &format!("{}/switch", created.location()),
            &[("csrf", &csrf), ("action", "pause")],
        )
        .await;
    assert_eq!(paused.status, 303, "{}", paused.body);
    let (_, body) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            None,
        )
        .await;
    assert_eq!(body["paused"], true);
    assert_eq!(body["description"], description);
    assert_eq!(body["ordering"], "none");

    // The edit form's checkbox orders the webhook (issue 15, item 1).
    let mut ordered = fields(&csrf);
    ordered.push(("ordered", "on".to_owned()));
    let edited = browser
        .post(&format!("{}/edit", created.location()), &pairs(&ordered))
        .await;
    assert_eq!(edited.status, 303, "{}", edited.body);
    let (_, body) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            None,
        )
        .await;
    assert_eq!(body["ordering"], "fifo", "{body}");
    let shown = browser.get(created.location()).await;
    assert!(shown.body.contains("ingest order (FIFO)"), "{}", shown.body);

    // Signing out ends the session in this browser.
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(browser.get("/console/").await.status, 303);
    server.stop().await;
}
store_test!(sign_in_csrf_and_forms);

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The deliveries page and a delivery's page show the attempt's response body escaped;
/// "retry now" makes it succeed once the receiver recovers; the API filters by event
/// type.
async fn deliveries_and_retry(backend: Backend) {
    // Failed attempts are retried an hour later: only "retry now" retries within the test.
    let server = backend
        .start_with(|c| {
            c.delivery.retry = fullup_server::domain::retry::RetrySchedule::new(
                vec![std::time::Duration::from_secs(3600)],
                0.0,
            );
        })
        .await;
    let mut receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let (webhook, _) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.set_status(500);
    receiver.set_body("<script>window.__xss=1</script>");
    receiver.add_header("x-note", "<b>bold</b>");
    let event = server
        .send_event(
            &site,
            "order.paid",
            json!({"note": "<img src=x onerror=alert(1)>"}),
        )
        .await;
    let other = server.send_event(&site, "order.refunded", json!({})).await;
    let _ = receiver.next(std::time::Duration::from_secs(10)).await;
    let failed = server
        .wait_for_delivery(&site, &event, |d| d["attempt_count"].as_u64() >= Some(1))
        .await;
    let delivery = failed["id"].as_str().expect("id").to_owned();

    let only_paid = server.deliveries(&site, "event_type=order.paid").await;
    assert_eq!(only_paid.len(), 1, "{only_paid:?}");
    assert_eq!(only_paid[0]["event_id"], event.as_str());
    let refunded = server.deliveries(&site, "event_type=order.refunded").await;
    assert_eq!(refunded[0]["event_id"], other.as_str());

    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let list = browser
        .get(&format!(
            "/console/sites/{site}/deliveries?webhook={webhook}&event_type=order.paid"
        ))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&delivery));
    let page = browser
        .get(&format!("/console/sites/{site}/deliveries/{delivery}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the payload is escaped"
    );
    assert!(page.body.contains("500"), "the status");
    assert!(
        page.body.contains("x-note: &lt;b&gt;bold&lt;/b&gt;"),
        "the response headers, escaped"
    );
    assert!(
        page.body.contains(&format!("webhook-id: {event}")),
        "the request headers sent"
    );
    let attempts = server.attempts(&site, &delivery).await;
    let sent = attempts[0]["request_headers"]
        .as_str()
        .expect("request headers");
    assert!(
        sent.contains("webhook-signature: v1,") && sent.contains("fullup-attempt: 1"),
        "{sent}"
    );
    assert!(
        attempts[0]["response_headers"]
            .as_str()
            .expect("response headers")
            .contains("x-note: <b>bold</b>")
    );

    receiver.set_status(200);
    let csrf = page.csrf();
    let retried = browser
        .post(
            &format!("/console/sites/{site}/deliveries/{delivery}/retry"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(retried.status, 303, "{}", retried.body);
    server.wait_for_state(&site, &event, "succeeded").await;

    // The site's page shows the webhook's last 24 h: three attempts (the failed one of
    // each event, the retried success), one of them a success.
    server
        .wait_for_delivery(&site, &other, |d| d["attempt_count"].as_u64() >= Some(1))
        .await;
    let site_page = browser.get(&format!("/console/sites/{site}")).await;
    assert!(
        site_page.body.contains("33% of 3 attempts"),
        "{}",
        site_page.body
    );
    assert!(
        site_page.body.contains("not failing"),
        "the success after the failures ended the streak"
    );
    server.stop().await;
}
store_test!(deliveries_and_retry);

/// Unknown console paths answer the console's own 404 page, with its headers.
#[tokio::test]
async fn unknown_console_paths_answer_an_html_404() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let page = browser.get("/console/no/such/page").await;
    assert_eq!(page.status, 404);
    assert!(page.header("content-type").starts_with("text/html"));
    assert_security_headers(&page);
    let (status, body) = server.call(Method::GET, "/v1/nothing", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

/// Recovering a webhook's failed deliveries from the console makes them pending again,
/// and the page's progress counters follow them until they are delivered.
async fn recover_shows_progress(backend: Backend) {
    // One attempt per delivery: a failure is final until recovered.
    let server = backend
        .start_with(|c| {
            c.delivery.retry = fullup_server::domain::retry::RetrySchedule::new(Vec::new(), 0.0);
        })
        .await;
    let mut receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let (webhook, _) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.set_status(500);
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(server.send_event(&site, "order.paid", json!({})).await);
    }
    for event in &events {
        server.wait_for_state(&site, event, "failed").await;
    }
    while receiver
        .try_next(std::time::Duration::from_millis(50))
        .await
        .is_some()
    {}
    receiver.set_status(200);

    let mut browser = Browser::new(&server);
    browser.sign_in().await;
    let path = format!("/console/sites/{site}/webhooks/{webhook}");
    let csrf = browser.get(&path).await.csrf();
    let page = browser
        .post(
            &format!("{path}/recover"),
            &[("csrf", &csrf), ("since", "2000-01-01T00:00")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("3 failed deliveries since"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("{path}/recover-progress?since=2000-01-01T00"))
    );
    for event in &events {
        server.wait_for_state(&site, event, "succeeded").await;
    }
    let progress = browser
        .get(&format!(
            "{path}/recover-progress?since=2000-01-01T00%3A00%3A00Z"
        ))
        .await;
    assert_eq!(progress.status, 200, "{}", progress.body);
    let counts: serde_json::Value = serde_json::from_str(&progress.body).expect("JSON");
    assert_eq!(counts, json!({"pending": "0", "failed": "0"}));
    server.stop().await;
}
store_test!(recover_shows_progress);
