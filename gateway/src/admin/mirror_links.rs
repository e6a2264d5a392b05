//! `/v1/mirror/links`: create, list, status, pause, resume, fail over, delete and reverse
//! mirror links.

use super::ApiError;
use crate::broker::Broker;
use crate::mirror::link::{LinkSpec, LinkState};
use crate::mirror::ops::{self, CreateLink};
use crate::mirror::MirrorError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

type Result<T> = std::result::Result<Json<T>, ApiError>;

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/v1/mirror/links", get(list).post(create))
        .route("/v1/mirror/links/{name}", get(status).delete(delete))
        .route("/v1/mirror/links/{name}/pause", post(pause))
        .route("/v1/mirror/links/{name}/resume", post(resume))
        .route("/v1/mirror/links/{name}/failover", post(failover))
        .route("/v1/mirror/links/{name}/reverse", post(reverse))
}

/// The one place a link error becomes an HTTP status.
impl From<MirrorError> for ApiError {
    fn from(e: MirrorError) -> Self {
        let code = match &e {
            MirrorError::Invalid(_) => StatusCode::BAD_REQUEST,
            MirrorError::UnknownLink(_) => StatusCode::NOT_FOUND,
            MirrorError::Exists(_) => StatusCode::CONFLICT,
            MirrorError::Source(_) => StatusCode::BAD_GATEWAY,
            MirrorError::Cluster(_) => StatusCode::SERVICE_UNAVAILABLE,
            MirrorError::Io(..) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

/// A link as `list` and `create` show it.
#[derive(Serialize)]
struct LinkView {
    name: String,
    source: String,
    state: &'static str,
    topics: Vec<String>,
    exclude: Vec<String>,
    groups: Option<String>,
    failed_over_topics: Vec<String>,
    /// Only the keys: values may be secrets.
    source_config: Vec<String>,
}

impl From<&LinkSpec> for LinkView {
    fn from(l: &LinkSpec) -> Self {
        Self {
            name: l.name.clone(),
            source: l.source.clone(),
            state: l.state.label(),
            topics: l.topics.clone(),
            exclude: l.exclude.clone(),
            groups: l.groups.clone(),
            failed_over_topics: l.failed_over.iter().cloned().collect(),
            source_config: l.source_config.keys().cloned().collect(),
        }
    }
}

async fn list(State(broker): State<Arc<Broker>>) -> Result<Vec<LinkView>> {
    Ok(Json(
        broker
            .mirrors
            .state()
            .links
            .values()
            .map(LinkView::from)
            .collect(),
    ))
}

async fn create(
    State(broker): State<Arc<Broker>>,
    Json(req): Json<CreateLink>,
) -> Result<LinkView> {
    let spec = ops::create(&broker, req).await?;
    Ok(Json(LinkView::from(&spec)))
}

/// One partition in `status`.
#[derive(Serialize)]
struct PartitionView {
    topic: String,
    partition: i32,
    source_end: i64,
    target_end: i64,
    lag: i64,
    state: String,
    /// Upper bound of the age of the oldest record not yet mirrored (0 when caught up).
    lag_ms: i64,
    records_mirrored: u64,
    bytes_mirrored: u64,
    fetch_errors: u64,
    /// Milliseconds since the last successful fetch (-1: none yet).
    last_fetch_age_ms: i64,
}

#[derive(Serialize)]
struct StatusView {
    name: String,
    state: &'static str,
    source: String,
    error: Option<String>,
    /// Milliseconds since consumer offsets were last synced (-1: not yet).
    last_offset_sync_age_ms: i64,
    partitions: Vec<PartitionView>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn status(State(broker): State<Arc<Broker>>, Path(name): Path<String>) -> Result<StatusView> {
    let link = broker.mirrors.link(&name)?;
    let st = broker.mirrors.status(&name);
    let now = now_ms();
    let partitions = st
        .snapshot()
        .into_iter()
        .map(|p| {
            // The log end now, not as of the last fetch.
            let target_end = broker
                .store
                .partition(&p.topic, p.partition)
                .map(|l| l.log_end_offset())
                .unwrap_or(p.target_end);
            let lag = (p.source_end - target_end).max(0);
            let state = if link.failed_over.contains(&p.topic) {
                "FAILED_OVER".to_string()
            } else if link.state != LinkState::Active {
                link.state.label().to_string()
            } else {
                p.state.clone()
            };
            PartitionView {
                lag_ms: if lag == 0 || p.caught_up_ms == 0 {
                    0
                } else {
                    (now - p.caught_up_ms).max(0)
                },
                topic: p.topic,
                partition: p.partition,
                source_end: p.source_end,
                target_end,
                lag,
                state,
                records_mirrored: p.records_mirrored,
                bytes_mirrored: p.bytes_mirrored,
                fetch_errors: p.fetch_errors,
                last_fetch_age_ms: if p.last_fetch_ms > 0 {
                    (now - p.last_fetch_ms).max(0)
                } else {
                    -1
                },
            }
        })
        .collect();
    let synced = *st.last_offset_sync_ms.lock();
    let error = st.error.lock().clone();
    Ok(Json(StatusView {
        name: link.name.clone(),
        state: link.state.label(),
        source: link.source.clone(),
        error,
        last_offset_sync_age_ms: if synced > 0 {
            (now - synced).max(0)
        } else {
            -1
        },
        partitions,
    }))
}

#[derive(Serialize)]
struct Done {
    name: String,
    state: &'static str,
}

fn done(broker: &Broker, name: &str) -> Result<Done> {
    let state = broker
        .mirrors
        .state()
        .links
        .get(name)
        .map(|l| l.state.label())
        .unwrap_or("DELETED");
    Ok(Json(Done {
        name: name.to_string(),
        state,
    }))
}

async fn pause(State(broker): State<Arc<Broker>>, Path(name): Path<String>) -> Result<Done> {
    ops::set_active(&broker, &name, false).await?;
    done(&broker, &name)
}

async fn resume(State(broker): State<Arc<Broker>>, Path(name): Path<String>) -> Result<Done> {
    ops::set_active(&broker, &name, true).await?;
    done(&broker, &name)
}

#[derive(Deserialize, Default)]
struct FailoverBody {
    #[serde(default)]
    topic: Option<String>,
}

async fn failover(
    State(broker): State<Arc<Broker>>,
    Path(name): Path<String>,
    body: Option<Json<FailoverBody>>,
) -> Result<Done> {
    let body = body.map(|b| b.0).unwrap_or_default();
    ops::failover(&broker, &name, body.topic.as_deref()).await?;
    done(&broker, &name)
}

async fn delete(State(broker): State<Arc<Broker>>, Path(name): Path<String>) -> Result<Done> {
    ops::delete(&broker, &name).await?;
    done(&broker, &name)
}

async fn reverse(
    State(broker): State<Arc<Broker>>,
    Path(name): Path<String>,
    Json(mut body): Json<CreateLink>,
) -> Result<LinkView> {
    body.name = name;
    let spec = ops::reverse(&broker, body).await?;
    Ok(Json(LinkView::from(&spec)))
}
