//! The receiving loop of `fullup listen`: verify, forward, report, answer.
//!
//! Every request is reported, even one to another path, because "my webhook never
//! arrives" is most often a wrong path or method. Only verified requests are forwarded.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use fullup_axum::{Seen, SeenIds, VerifyConfig, read_body};
use http::request::Parts;
use http::{HeaderMap, HeaderName, Method, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::report::{Forwarded, REPLAYED, Report, Verdict};

/// A local tool shows what it was sent rather than refusing it: 16 MiB covers any
/// realistic webhook, still bounding memory.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// How long the forwarding target may take; a local app that hangs should not hang the sender.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// What to listen for and how to answer.
pub struct Settings {
    /// The secrets and verification rules.
    pub config: VerifyConfig,
    /// The listened path, e.g. `/webhook-endpoint`.
    pub path: String,
    /// Where to relay verified requests.
    pub forward_to: Option<reqwest::Url>,
    /// The status answered to verified requests instead of 200 (or the target's).
    pub status: Option<StatusCode>,
    /// One JSON object per request instead of a readable block.
    pub json: bool,
}

struct Listen {
    settings: Settings,
    client: reqwest::Client,
    out: Mutex<Box<dyn Write + Send>>,
    /// The deliveries of the last 5 minutes, to refuse a copy of one.
    seen: SeenIds,
    /// Signalled when the output is gone (e.g. `fullup listen | head`): stop quietly.
    output_closed: Notify,
}

/// Serves until Ctrl-C or until `out` is closed.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    out: Box<dyn Write + Send>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(FORWARD_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let state = Arc::new(Listen {
        settings,
        client,
        out: Mutex::new(out),
        seen: SeenIds::new(SeenIds::DEFAULT_CAPACITY),
        output_closed: Notify::new(),
    });
    let app = Router::new()
        .fallback(receive)
        .with_state(Arc::clone(&state));
    let stop = async move {
        tokio::select! {
            _ = state.output_closed.notified() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}

async fn receive(State(listen): State<Arc<Listen>>, request: Request) -> Response {
    let received_at = SystemTime::now();
    let (parts, body) = request.into_parts();
    let (body, verdict) = match read_body(&parts.headers, body, BODY_LIMIT).await {
        Ok(body) => {
            let verdict = listen.judge(&parts, &body, received_at);
            (body, verdict)
        }
        Err(rejection) => (Bytes::new(), Verdict::Rejected(rejection)),
    };
    let forwarded = match (&verdict, &listen.settings.forward_to) {
        (Verdict::Verified(_), Some(url)) => Some(listen.forward(url, &parts.headers, &body).await),
        _ => None,
    };
    let (status, response) = listen.answer(&parts, &verdict, forwarded.as_ref());
    let report = Report {
        received_at,
        parts: &parts,
        body: &body,
        verdict: &verdict,
        forwarded: forwarded.as_ref(),
        status,
    };
    listen.print(&report);
    (status, response).into_response()
}

impl Listen {
    fn judge(&self, parts: &Parts, body: &[u8], received_at: SystemTime) -> Verdict {
        let path = &self.settings.path;
        if parts.method != Method::POST || parts.uri.path() != path {
            return Verdict::Ignored(format!("POST {path}"));
        }
        let now = unix_secs(received_at);
        let delivery = match self.settings.config.verify_at(&parts.headers, body, now) {
            Ok(delivery) => delivery,
            Err(rejection) => return Verdict::Rejected(rejection),
        };
        let seen = match &delivery.timestamped {
            Some(stamped) => self.seen.check(&stamped.id, stamped.timestamp, now),
            None => Seen::First,
        };
        match seen {
            Seen::Replay => Verdict::Replayed(delivery),
            _ => Verdict::Verified(delivery),
        }
    }

    /// Relays the request unchanged: same method, headers (less hop-by-hop ones) and bytes.
    async fn forward(&self, url: &reqwest::Url, headers: &HeaderMap, body: &Bytes) -> Forwarded {
        let relayed: HeaderMap = headers
            .iter()
            .filter(|(name, _)| !is_hop_by_hop(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let sent = self
            .client
            .post(url.clone())
            .headers(relayed)
            .body(body.clone())
            .send()
            .await;
        let outcome = match sent {
            Ok(response) => {
                let status = response.status();
                response
                    .bytes()
                    .await
                    .map(|body| (status, body))
                    .map_err(|error| format!("{:#}", anyhow::Error::from(error)))
            }
            Err(error) => Err(format!("{:#}", anyhow::Error::from(error))),
        };
        Forwarded {
            url: url.to_string(),
            outcome,
        }
    }

    /// The status and body to answer: `--status`, else the target's answer, else 200
    /// for a verified request; 403 for a refused one; 404/405 for another route.
    fn answer(
        &self,
        parts: &Parts,
        verdict: &Verdict,
        forwarded: Option<&Forwarded>,
    ) -> (StatusCode, Response) {
        let status = match (verdict, forwarded.map(|f| &f.outcome)) {
            (Verdict::Verified(_), Some(Ok((status, _)))) => {
                self.settings.status.unwrap_or(*status)
            }
            (Verdict::Verified(_), Some(Err(_))) => {
                self.settings.status.unwrap_or(StatusCode::BAD_GATEWAY)
            }
            (Verdict::Verified(_), None) => self.settings.status.unwrap_or(StatusCode::OK),
            (Verdict::Rejected(_) | Verdict::Replayed(_), _) => StatusCode::FORBIDDEN,
            (Verdict::Ignored(_), _) if parts.uri.path() == self.settings.path => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            (Verdict::Ignored(_), _) => StatusCode::NOT_FOUND,
        };
        let json = match (verdict, forwarded.map(|f| &f.outcome)) {
            (Verdict::Verified(_), Some(Ok((_, body)))) => {
                return (status, Response::new(Body::from(body.clone())));
            }
            (Verdict::Rejected(rejection), _) => rejection.to_json(),
            (Verdict::Replayed(_), _) => serde_json::json!({
                "error": { "code": REPLAYED, "message": verdict.describe() }
            }),
            (verdict, _) => serde_json::json!({ "verdict": verdict.describe() }),
        };
        let mut response = Response::new(Body::from(json.to_string()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        (status, response)
    }

    fn print(&self, report: &Report<'_>) {
        let text = match self.settings.json {
            true => report.json_line() + "\n",
            false => report.text(),
        };
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            self.output_closed.notify_one();
        }
    }
}

fn unix_secs(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    const HOP_BY_HOP: [&str; 9] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    ];
    name == header::CONTENT_LENGTH || HOP_BY_HOP.contains(&name.as_str())
}
