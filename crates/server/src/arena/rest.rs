//! The arena's REST API under `/api/v1`: signed private calls (orders, portfolio) and
//! public market data. Handlers only authenticate, parse and map errors; every decision
//! is the exchange's ([`roomcast_arena::Arena`]).

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use roomcast_arena::{
    Arena, BookView, MarketView, OrderError, OrderErrorKind, OrderRequest, OrderView,
    PortfolioView, TradeView,
};
use roomcast_engine::auth::CollectiveId;
use serde::{Deserialize, Serialize};

use super::caller::caller;
use crate::api::ApiError;
use crate::app::AppState;

/// Most book levels per side one request returns.
pub(crate) const MAX_DEPTH: usize = 1000;
/// Most trades one request returns.
pub(crate) const MAX_TRADES: usize = 1000;

fn arena(state: &AppState) -> Result<&Arena, ApiError> {
    state.arena.as_ref().ok_or_else(|| ApiError::Coded {
        status: StatusCode::NOT_FOUND,
        code: "arena_disabled",
        message: "the trading arena is not running on this server".into(),
    })
}

/// The arena and the authenticated caller of a private route.
fn private<'a>(
    state: &'a AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'a Arena, CollectiveId), ApiError> {
    let arena = arena(state)?;
    Ok((arena, caller(state, method, uri, headers, body)?))
}

/// The authenticated caller (see [`caller`]) of a private route without a body (a signature
/// covers the empty body). Refused like [`private`]: `arena_disabled` first, then the caller.
pub(crate) struct Caller(CollectiveId);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        arena(state)?;
        caller(state, &parts.method, &parts.uri, &parts.headers, b"").map(Caller)
    }
}

fn unavailable() -> ApiError {
    ApiError::Coded {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "unavailable",
        message: "the exchange is unavailable".into(),
    }
}

fn order_error(e: OrderError) -> ApiError {
    let message = e.to_string();
    match e.kind() {
        OrderErrorKind::Rejected => ApiError::Rejected {
            reason: e.reason(),
            message,
        },
        OrderErrorKind::NotFound => ApiError::Coded {
            status: StatusCode::NOT_FOUND,
            code: "unknown_order",
            message,
        },
        OrderErrorKind::Conflict => ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: e.reason(),
            message,
        },
        OrderErrorKind::Unavailable => unavailable(),
    }
}

fn unknown_order() -> ApiError {
    order_error(OrderError::NotFound)
}

/// An order id from the path: a positive integer, else it names no order.
fn order_id(text: &str) -> Result<u64, ApiError> {
    match text.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(unknown_order()),
    }
}

/// `POST /api/v1/orders` (signed): places an order. 201 with the order; 422 with the
/// reason when a risk check refuses it; the same `client_order_id` again returns the
/// first order.
#[utoipa::path(post, path = "/api/v1/orders", tag = "arena",
    request_body = OrderRequest,
    params(
        ("X-Collective-Id" = String, Header, description = "the signing collective"),
        ("X-Timestamp" = String, Header, description = "unix milliseconds, within 30 s"),
        ("X-Signature" = String, Header, description = "base64 Ed25519 signature of timestamp + method + path_with_query + body"),
    ),
    responses(
        (status = 201, description = "placed (or the first order of this client_order_id)", body = OrderView),
        (status = 400, description = "malformed body"),
        (status = 401, description = "missing or bad signature, stale timestamp, replay, unknown collective"),
        (status = 422, description = "refused by a risk check; `error.reason` says why"),
    ))]
pub(crate) async fn place_order(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let (arena, collective) = private(&state, &method, &uri, &headers, &body)?;
    let request: OrderRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid order: {e}")))?;
    let order = arena
        .place_order(&collective, request)
        .await
        .map_err(order_error)?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// Most orders in one `POST /api/v1/orders/batch`.
pub(crate) const MAX_BATCH_ORDERS: usize = 20;

/// The body of `POST /api/v1/orders/batch`: an array of orders, or `{"orders":[...]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum OrderBatch {
    /// `[order, ...]`.
    List(Vec<OrderRequest>),
    /// `{"orders":[order, ...]}`.
    Wrapped {
        /// The orders, placed in this order.
        orders: Vec<OrderRequest>,
    },
}

/// One order's outcome in a batch: `{"status":201,"order":{...}}`, or
/// `{"status":422,"error":{"code","reason","message"}}` exactly as the single-order
/// route would have answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchItem {
    /// The HTTP status this order alone would have got.
    status: u16,
    /// The order, when placed (or found by its `client_order_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<OrderView>,
    /// Why not, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    error: Option<serde_json::Value>,
}

/// The reply to a batch: one result per order, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchOrdersReply {
    /// How many orders were placed (or found by their `client_order_id`).
    accepted: usize,
    /// One result per order, in the request's order.
    results: Vec<BatchItem>,
}

/// `POST /api/v1/orders/batch` (signed): places 1-20 orders of the caller with one
/// signature, in the given order, inside one durable commit of the exchange (no other
/// request comes between them). Each order succeeds or fails on its own, as it would
/// have on `POST /api/v1/orders`; the reply is 200 once every accepted order is durable.
#[utoipa::path(post, path = "/api/v1/orders/batch", tag = "arena",
    request_body(content = Vec<OrderRequest>, description = "1-20 orders (or `{\"orders\":[...]}`)"),
    params(
        ("X-Collective-Id" = String, Header, description = "the signing collective"),
        ("X-Timestamp" = String, Header, description = "unix milliseconds, within 30 s"),
        ("X-Signature" = String, Header, description = "base64 Ed25519 signature of timestamp + method + path_with_query + body"),
    ),
    responses(
        (status = 200, description = "one result per order, in order", body = BatchOrdersReply),
        (status = 400, description = "malformed body, or not 1-20 orders (none was placed)"),
        (status = 401, description = "missing or bad signature, stale timestamp, replay, unknown collective"),
        (status = 503, description = "the exchange is unavailable (none was placed)"),
    ))]
pub(crate) async fn place_orders(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchOrdersReply>, ApiError> {
    let (arena, collective) = private(&state, &method, &uri, &headers, &body)?;
    let requests = match serde_json::from_slice::<OrderBatch>(&body) {
        Ok(OrderBatch::List(orders) | OrderBatch::Wrapped { orders }) => orders,
        Err(_) => {
            // The untagged error says nothing useful: name the first bad order instead.
            let detail = serde_json::from_slice::<Vec<serde_json::Value>>(&body)
                .ok()
                .and_then(|items| {
                    items.into_iter().enumerate().find_map(|(i, item)| {
                        serde_json::from_value::<OrderRequest>(item)
                            .err()
                            .map(|e| format!("order {i}: {e}"))
                    })
                })
                .unwrap_or_else(|| {
                    "body must be a JSON array of orders or {\"orders\":[...]}".to_owned()
                });
            return Err(ApiError::BadRequest(format!("invalid batch: {detail}")));
        }
    };
    if requests.is_empty() || requests.len() > MAX_BATCH_ORDERS {
        return Err(ApiError::BadRequest(format!(
            "a batch holds 1-{MAX_BATCH_ORDERS} orders, not {}",
            requests.len()
        )));
    }
    let outcomes = arena.place_orders(&collective, requests).await;
    if outcomes
        .iter()
        .all(|o| matches!(o, Err(e) if e.kind() == OrderErrorKind::Unavailable))
    {
        return Err(unavailable());
    }
    let mut accepted = 0;
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(order) => {
                accepted += 1;
                BatchItem {
                    status: StatusCode::CREATED.as_u16(),
                    order: Some(order),
                    error: None,
                }
            }
            Err(e) => {
                let error = order_error(e);
                BatchItem {
                    status: error.status().as_u16(),
                    order: None,
                    error: Some(error.body()),
                }
            }
        })
        .collect();
    Ok(Json(BatchOrdersReply { accepted, results }))
}

/// `DELETE /api/v1/orders/{order_id}` (signed): cancels an open order of the caller.
/// Someone else's order is 404, as if it did not exist.
#[utoipa::path(delete, path = "/api/v1/orders/{order_id}", tag = "arena",
    params(("order_id" = u64, Path, description = "the exchange's order id")),
    responses(
        (status = 200, description = "cancelled", body = OrderView),
        (status = 401, description = "not authenticated"),
        (status = 404, description = "no such order of the caller"),
        (status = 409, description = "the order is no longer open"),
    ))]
pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    Caller(collective): Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let arena = arena(&state)?;
    let order = arena
        .cancel_order(&collective, order_id(&id)?)
        .await
        .map_err(order_error)?;
    Ok(Json(order))
}

/// Query of `GET /api/v1/orders`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrdersQuery {
    /// `open` (default) or `all` (open and recently closed).
    status: Option<String>,
}

/// `GET /api/v1/orders?status=open|all` (signed): the caller's orders.
#[utoipa::path(get, path = "/api/v1/orders", tag = "arena", params(OrdersQuery),
    responses(
        (status = 200, description = "the caller's orders", body = [OrderView]),
        (status = 400, description = "bad status"),
        (status = 401, description = "not authenticated"),
    ))]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    Caller(collective): Caller,
    query: Result<Query<OrdersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    let arena = arena(&state)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let open_only = match q.status.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status must be open or all, not {other:?}"
            )))
        }
    };
    let orders = arena
        .orders(&collective, open_only)
        .await
        .map_err(|_| unavailable())?;
    Ok(Json(orders))
}

/// `GET /api/v1/orders/{order_id}` (signed): one of the caller's orders.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "arena",
    params(("order_id" = u64, Path, description = "the exchange's order id")),
    responses(
        (status = 200, description = "the order", body = OrderView),
        (status = 401, description = "not authenticated"),
        (status = 404, description = "no such order of the caller"),
    ))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    Caller(collective): Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let arena = arena(&state)?;
    arena
        .order(&collective, order_id(&id)?)
        .await
        .map_err(|_| unavailable())?
        .map(Json)
        .ok_or_else(unknown_order)
}

/// `GET /api/v1/portfolio` (signed): the caller's cash, positions, PnL and equity.
#[utoipa::path(get, path = "/api/v1/portfolio", tag = "arena",
    responses(
        (status = 200, description = "the portfolio", body = PortfolioView),
        (status = 401, description = "not authenticated"),
        (status = 404, description = "the collective has no account"),
    ))]
pub(crate) async fn portfolio(
    State(state): State<AppState>,
    Caller(collective): Caller,
) -> Result<Json<PortfolioView>, ApiError> {
    let arena = arena(&state)?;
    arena
        .portfolio(&collective)
        .await
        .map_err(|_| unavailable())?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no account for this collective".into()))
}

/// `GET /api/v1/markets`: every instrument with its tick and lot sizes and status.
#[utoipa::path(get, path = "/api/v1/markets", tag = "market data",
    responses((status = 200, description = "the instruments", body = [MarketView])))]
pub(crate) async fn markets(
    State(state): State<AppState>,
) -> Result<Json<Vec<MarketView>>, ApiError> {
    Ok(Json(arena(&state)?.markets().await))
}

/// Query of `GET /api/v1/markets/{symbol}/book`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookQuery {
    /// Levels per side (default 20, at most 1000).
    depth: Option<usize>,
}

/// `GET /api/v1/markets/{symbol}/book?depth=N`: the best N levels per side.
#[utoipa::path(get, path = "/api/v1/markets/{symbol}/book", tag = "market data",
    params(("symbol" = String, Path, description = "e.g. BTC-USD"), BookQuery),
    responses(
        (status = 200, description = "the book", body = BookView),
        (status = 400, description = "bad depth"),
        (status = 404, description = "unknown symbol"),
    ))]
pub(crate) async fn book(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    query: Result<Query<BookQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BookView>, ApiError> {
    let arena = arena(&state)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let depth = q.depth.unwrap_or(20).clamp(1, MAX_DEPTH);
    arena
        .book(&symbol, depth)
        .await
        .map_err(|_| unavailable())?
        .map(Json)
        .ok_or_else(|| unknown_symbol(&symbol))
}

/// Query of `GET /api/v1/markets/{symbol}/trades`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct TradesQuery {
    /// Most trades, newest first (default 100, at most 1000).
    limit: Option<usize>,
}

/// `GET /api/v1/markets/{symbol}/trades?limit=N`: the latest trades, newest first.
#[utoipa::path(get, path = "/api/v1/markets/{symbol}/trades", tag = "market data",
    params(("symbol" = String, Path, description = "e.g. BTC-USD"), TradesQuery),
    responses(
        (status = 200, description = "the trades", body = [TradeView]),
        (status = 400, description = "bad limit"),
        (status = 404, description = "unknown symbol"),
    ))]
pub(crate) async fn trades(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    query: Result<Query<TradesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<TradeView>>, ApiError> {
    let arena = arena(&state)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_TRADES);
    arena
        .trades(&symbol, limit)
        .await
        .map_err(|_| unavailable())?
        .map(Json)
        .ok_or_else(|| unknown_symbol(&symbol))
}

fn unknown_symbol(symbol: &str) -> ApiError {
    ApiError::Coded {
        status: StatusCode::NOT_FOUND,
        code: "unknown_symbol",
        message: format!("no market {symbol:?}"),
    }
}
