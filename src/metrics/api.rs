//! Counting API requests by route template, method and status.
//!
//! Design note: the route label must be the route's template (`/account`, and for routes with
//! parameters their pattern, never the value in the path), and every request must be counted,
//! including the ones no route matched (404) and the CORS preflights the headers layer answers
//! itself. axum knows the template ([`MatchedPath`]) only inside the router, after matching,
//! and an outer layer sees only the request before and the response after. So two layers: a
//! route layer ([`mark_route`], run only for matched routes) copies the template into the
//! response's extensions, and the outermost layer ([`count`]) counts every response with that
//! template, or `other` when there is none. New routes are counted without a change here.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Route layer: hands the matched route's template on to [`count`].
pub(crate) async fn mark_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Outermost layer: counts the request once it is answered.
pub(crate) async fn count(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let response = next.run(request).await;
    let route = response.extensions().get::<MatchedPath>().map_or("other", MatchedPath::as_str);
    super::counters::api_request(route, method, response.status().as_u16());
    response
}

/// The method as a label: the ones the API uses by name, anything else `other` (a client
/// choosing methods must not choose label values).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
