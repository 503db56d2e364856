//! Portal links on both stores: a link made with the site's own API key opens a
//! session of that site once; from it, another site, its webhooks and its deliveries
//! are 404 by every URL; and at the store, a token is taken once however many ask.

use std::time::Duration;

use fullup_server::domain::time::Timestamp;
use fullup_server::tokens::TokenHasher;
use reqwest::Method;
use serde_json::json;

use super::{Browser, assert_security_headers};
use crate::secrets::create_api_key;
use crate::support::records::site_with_webhooks;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

/// A site with a webhook to `receiver` and one delivered event: (site, webhook, delivery).
async fn site_with_delivery(
    server: &TestServer,
    receiver: &TestReceiver,
) -> (String, String, String) {
    let site = server.create_site().await;
    let (webhook, _) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    let event = server.send_event(&site, "order.paid", json!({})).await;
    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    (
        site,
        webhook,
        delivery["id"].as_str().expect("id").to_owned(),
    )
}

/// Opens `url` (a portal link) in `browser` as a person would: the landing page, then
/// its button.
async fn open_portal(browser: &mut Browser, url: &str) -> super::Page {
    let path = &url[url.find("/console/").expect("a console path")..];
    let landing = browser.get(path).await;
    assert_eq!(landing.status, 200, "{}", landing.body);
    browser.post(path, &[]).await
}

async fn portal_sessions_reach_their_own_site_only(backend: Backend) {
    let server = backend.start().await;
    let mut receiver = TestReceiver::start().await;
    let (own, own_webhook, own_delivery) = site_with_delivery(&server, &receiver).await;
    let (other, other_webhook, other_delivery) = site_with_delivery(&server, &receiver).await;
    let _ = receiver.try_next(Duration::from_millis(10)).await;

    // The site's own API key may make a link for its site, not for another.
    let key = create_api_key(&server, &own).await;
    let (status, _) = server
        .call_as(
            Some(&key),
            Method::POST,
            &format!("/v1/sites/{other}/portal-links"),
            None,
        )
        .await;
    assert_eq!(status, 404, "another site's key cannot make a link");
    let (status, link) = server
        .call_as(
            Some(&key),
            Method::POST,
            &format!("/v1/sites/{own}/portal-links"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&format!("{}/console/portal/fpl_", server.base)),
        "{url}"
    );

    // The landing page takes nothing: a previewer fetching it leaves the link usable.
    let mut browser = Browser::new(&server);
    let opened = open_portal(&mut browser, &url).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    assert_eq!(opened.location(), format!("/console/sites/{own}"));
    let home = browser.get("/console/").await;
    assert_eq!(
        home.location(),
        format!("/console/sites/{own}"),
        "the portal's home is its site"
    );

    let own_page = browser.get(&format!("/console/sites/{own}")).await;
    assert_eq!(own_page.status, 200, "{}", own_page.body);
    assert!(own_page.body.contains(&own_webhook));
    assert_security_headers(&own_page);
    assert!(
        own_page.headers.get("x-frame-options").is_none(),
        "portal pages follow --portal-frame-ancestors"
    );
    assert!(
        !own_page.body.contains("Portal link"),
        "a portal cannot make portal links"
    );
    let delivery = browser
        .get(&format!("/console/sites/{own}/deliveries/{own_delivery}"))
        .await;
    assert_eq!(delivery.status, 200, "{}", delivery.body);
    let csrf = delivery.csrf();

    // Everything of the other site is 404, by its own path or through the portal's site.
    for path in [
        format!("/console/sites/{other}"),
        format!("/console/sites/{other}/deliveries"),
        format!("/console/sites/{other}/live"),
        format!("/console/sites/{other}/event-types"),
        format!("/console/sites/{other}/webhooks/{other_webhook}"),
        format!("/console/sites/{own}/webhooks/{other_webhook}"),
        format!("/console/sites/{own}/webhooks/{other_webhook}/edit"),
        format!("/console/sites/{other}/deliveries/{other_delivery}"),
        format!("/console/sites/{own}/deliveries/{other_delivery}"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(
            page.body.contains("does not exist"),
            "{path}: the same answer as an id that does not exist"
        );
    }
    for path in [
        format!("/console/sites/{own}/deliveries/{other_delivery}/retry"),
        format!("/console/sites/{other}/deliveries/{other_delivery}/retry"),
        format!("/console/sites/{own}/webhooks/{other_webhook}/secret"),
        format!("/console/sites/{own}/webhooks/{other_webhook}/delete"),
        format!("/console/sites/{other}/portal-link"),
    ] {
        let page = browser.post(&path, &[("csrf", &csrf)]).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
    }
    let filtered = browser
        .get(&format!(
            "/console/sites/{own}/deliveries?webhook={other_webhook}"
        ))
        .await;
    assert_eq!(filtered.status, 200);
    assert!(
        !filtered.body.contains(&other_delivery),
        "filtering by another site's webhook shows nothing"
    );
    let (_, still) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{other}/webhooks/{other_webhook}"),
            None,
        )
        .await;
    assert_eq!(
        still["id"],
        other_webhook.as_str(),
        "the other site's webhook is untouched"
    );

    // The link opened once: a second browser gets 404.
    let mut second = Browser::new(&server);
    let again = open_portal(&mut second, &url).await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert_eq!(
        second.get(&format!("/console/sites/{own}")).await.status,
        303,
        "no session"
    );
    server.stop().await;
}
store_test!(portal_sessions_reach_their_own_site_only);

async fn a_portal_token_is_taken_once(backend: Backend) {
    let open = backend.open_store().await;
    let store = open.store.clone();
    let now = Timestamp::from_unix_ms(1_800_000_000_000);
    let (site, _) = site_with_webhooks(&*store, now, 0).await;
    let tokens = TokenHasher::generate();
    let hash_token = |token: &str| tokens.hash(token);
    let hash = hash_token("fpl_test-token");
    store
        .create_portal_token(&hash, site, now + Duration::from_secs(600), now)
        .await
        .expect("create");
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_portal_token(&hash, now).await.expect("take") })
        })
        .collect();
    let mut taken = Vec::new();
    for taker in takers {
        taken.extend(taker.await.expect("task"));
    }
    assert_eq!(taken, vec![site], "exactly one taker gets the site");

    // An expired token is not taken, and the next creation drops it.
    let expired = hash_token("fpl_expired");
    store
        .create_portal_token(&expired, site, now + Duration::from_secs(1), now)
        .await
        .expect("create");
    let later = now + Duration::from_secs(2);
    assert_eq!(
        store
            .take_portal_token(&expired, later)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .take_portal_token(&hash_token("fpl_unknown"), now)
            .await
            .expect("take"),
        None
    );
}
store_test!(a_portal_token_is_taken_once);
