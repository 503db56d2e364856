//! The console's bounded delivery search, at the store on both stores: with a scan
//! window, a filtered page looks through at most that many deliveries, says where to
//! search on, and paging through finds every match exactly once.

use std::time::Duration;

use fullup_server::domain::time::Timestamp;
use fullup_server::store::{DeliveryFilter, PageRequest};

use crate::support::records::{ingest_at, site_with_webhooks};
use crate::support::{Backend, store_test};

async fn a_scan_window_bounds_each_page_and_misses_no_match(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let t0 = Timestamp::from_unix_ms(1_800_000_000_000);
    let (site, _) = site_with_webhooks(store, t0, 1).await;
    for i in 0..30 {
        ingest_at(store, site, t0 + Duration::from_millis(i), None).await;
    }
    // The 5 newest match; pages of 3, each looking through 10 deliveries at most.
    let filter = DeliveryFilter {
        since: Some(t0 + Duration::from_millis(25)),
        scan_window: Some(10),
        ..DeliveryFilter::default()
    };
    let mut page = PageRequest {
        limit: 3,
        before: None,
    };
    let mut sizes = Vec::new();
    let mut found = Vec::new();
    loop {
        let got = store
            .list_deliveries(site, &filter, &page)
            .await
            .expect("list");
        sizes.push(got.items.len());
        found.extend(got.items.iter().map(|d| d.created_at));
        match got.next_cursor {
            Some(next) => page.before = Some(next),
            None => break,
        }
    }
    assert_eq!(
        sizes,
        vec![3, 2, 0, 0],
        "full page, then what windows of 10 hold"
    );
    let expected: Vec<Timestamp> = (25..30)
        .rev()
        .map(|i| t0 + Duration::from_millis(i))
        .collect();
    assert_eq!(found, expected, "every match once, newest first");

    // Without a window the same filter fills pages as before.
    let unbounded = DeliveryFilter {
        scan_window: None,
        ..filter
    };
    let first = store
        .list_deliveries(
            site,
            &unbounded,
            &PageRequest {
                limit: 5,
                before: None,
            },
        )
        .await
        .expect("list");
    assert_eq!(first.items.len(), 5);
    assert_eq!(first.next_cursor, None);
}
store_test!(a_scan_window_bounds_each_page_and_misses_no_match);
