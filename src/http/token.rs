//! `GET|POST /token[?app=]` and `GET|POST /apps/{app}/token`: extract, then hand over to auth,
//! policy and signing. The app comes from the path or query only, never the body.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::client::client_address;
use super::observe::Deadline;
use super::{ApiError, AppState, no_store};
use crate::audit;
use crate::auth::{AuthError, Authenticator, Credentials};
use crate::policy::{GrantKind, MintRequest};
use crate::runtime::{MintError, Runtime, unix_now};
use crate::text;

const REQUEST_ID: &str = "x-request-id";

/// The `Allow` of the token routes: `HEAD`, which axum would offer, is refused.
pub(super) const ALLOWED_METHODS: HeaderValue = HeaderValue::from_static("GET, POST");

/// The 200 body after its first field, `token` (see [`token_body`]).
#[derive(Serialize)]
struct TokenDetails<'a> {
    identity: &'a str,
    app: &'a str,
    grants: Vec<&'static str>,
    ttl: u64,
    expires_at: String,
}

/// Both token routes: the app comes from the path or the query (see [`requested_app`]).
pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let request_id = request_id(request.headers());
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let runtime = state.runtime();
    let (named, query_error) = requested_app(request.uri(), &runtime);
    let app_name = named.unwrap_or_default();
    let app_name = app_name.as_str();
    let client_ip = client_address(client, request.headers(), &runtime.server.trusted_proxies);
    let deadline = request.extensions().get::<Deadline>().copied();
    let outcome = match query_error {
        None => {
            within(
                deadline,
                mint(&runtime, app_name, request, client, client_ip),
            )
            .await
        }
        Some(error) => Err(error),
    };
    let ctx = audit::Context {
        app: app_name,
        request_id: &request_id,
        client: client_ip,
    };
    let response = match outcome {
        Ok((response, minted)) => {
            audit::minted(&ctx, &minted);
            if let Some(counters) = runtime.minted_counters.get(app_name) {
                counters.count(&minted.kinds);
            }
            response
        }
        Err(error) => {
            audit::denied(&ctx, error.code, &error.reason);
            // A name a client made up must not become a metric label (unbounded series).
            let label = if runtime.apps.contains_key(app_name) {
                app_name
            } else {
                "(unknown)"
            };
            runtime.metrics.denied(label, error.code);
            error.into_response()
        }
    };
    answer(response, &request_id)
}

/// 405 for any method but GET and POST: HEAD would run the GET handler and mint a token nobody
/// sees. Like every answer of the token routes, it carries the request id and `no-store`.
pub async fn method_not_allowed(headers: HeaderMap) -> Response {
    let mut response = ApiError::method_not_allowed().into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, ALLOWED_METHODS);
    answer(response, &request_id(&headers))
}

/// What every answer of the token routes carries.
fn answer(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    no_store(response)
}

/// `minting` cut off at the request's deadline, so that a token request that runs out of time
/// is answered here, audited like any refusal, rather than by the timeout layer.
async fn within<T>(
    deadline: Option<Deadline>,
    minting: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match deadline {
        Some(Deadline(at)) => tokio::time::timeout_at(at, minting)
            .await
            .unwrap_or_else(|_elapsed| Err(ApiError::timed_out().with_reason("request_timeout"))),
        None => minting.await,
    }
}

async fn mint(
    runtime: &Runtime,
    app_name: &str,
    request: Request,
    client: Option<SocketAddr>,
    client_ip: Option<IpAddr>,
) -> Result<(Response, crate::runtime::Minted), ApiError> {
    let app = runtime
        .apps
        .get(app_name)
        .ok_or_else(ApiError::unknown_app)?;
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !app.cors.allows(origin.as_bytes())
    {
        return Err(ApiError::origin_not_allowed());
    }
    let limit = runtime.server.max_body_bytes;
    if content_length(request.headers()).is_some_and(|len| len > limit as u64) {
        return Err(ApiError::payload_too_large());
    }

    let authenticator = runtime
        .authenticators
        .get(&app.auth)
        .ok_or_else(|| ApiError::internal("app names a missing authenticator"))?;
    if let Some(wait) = client_ip.and_then(|ip| runtime.limits.blocked(ip)) {
        return Err(ApiError::rate_limited(wait).with_reason("auth_failures_from_client"));
    }
    let now = unix_now();
    let credentials = Credentials {
        headers: request.headers(),
        peer: client,
        now,
    };
    let principal = match authenticator.authenticate(credentials).await {
        Ok(principal) => principal,
        Err(error) => {
            if let (AuthError::Unauthenticated { reason }, Some(ip)) = (&error, client_ip)
                && let Some(wait) = runtime.limits.record_failure(ip)
            {
                return Err(ApiError::rate_limited(wait).with_reason(*reason));
            }
            let bearer = matches!(authenticator, Authenticator::Jwt(_));
            return Err(ApiError::from_auth(error, bearer));
        }
    };
    // Per identity, taken before the request fields are read, so that a request refused later
    // still counts; a caller whose identity cannot be rendered (and is refused below) counts
    // against its subject.
    if app.rate_limit.is_some() {
        let identity = app.policy.identity_of(&principal);
        let bucket = identity.as_deref().unwrap_or(&principal.subject);
        runtime
            .limits
            .check_caller(app_name, bucket)
            .map_err(|wait| ApiError::rate_limited(wait).with_reason("caller_rate"))?;
    }

    let mint_request = read_request(request, limit).await?;
    let minted = Runtime::mint(app, &principal, &mint_request, now).map_err(|e| match e {
        MintError::Denied(denial) => ApiError::from(denial),
        MintError::Sign(e) => ApiError::internal(e.to_string()),
    })?;
    let expires_at = OffsetDateTime::from_unix_timestamp(minted.expires_at as i64)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    let details = TokenDetails {
        identity: &minted.identity,
        app: app_name,
        grants: minted.kinds.iter().map(|k| k.as_str()).collect(),
        ttl: minted.ttl_secs,
        expires_at,
    };
    let body = token_body(&minted.token, &details)
        .map_err(|e| ApiError::internal(format!("response body: {e}")))?;
    let content_type = HeaderValue::from_static("application/json");
    let response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    Ok((response, minted))
}

/// `{"token":"…","identity":…}`. A minted token is base64url and dots, which JSON does not
/// escape, so it is copied whole after one check of all its bytes at once: serde_json would
/// test its ~650 bytes one at a time, the largest part of the response's JSON work.
fn token_body(token: &str, details: &TokenDetails) -> serde_json::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(token.len() + 192);
    body.extend_from_slice(b"{\"token\":");
    if text::needs_json_escape(token) {
        serde_json::to_writer(&mut body, token)?;
    } else {
        body.push(b'"');
        body.extend_from_slice(token.as_bytes());
        body.push(b'"');
    }
    body.push(b',');
    let details_at = body.len();
    serde_json::to_writer(&mut body, details)?;
    body.remove(details_at); // the opening brace of the details: they continue this object
    Ok(body)
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(crate::text::random_id, str::to_owned)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The app a token request names, by its path (`/apps/{app}/token`, as sent: app names need no
/// percent-encoding) or by the query of `/token` (`?app=`), else `server.default_app`; with the
/// reason the query is refused, if it is: `app` given twice, or besides a path that names one.
/// The app is still named then, for the refusal's CORS headers and audit record. CORS decides
/// by it before the handler runs, so both answer for the same app.
pub(super) fn requested_app(uri: &Uri, runtime: &Runtime) -> (Option<String>, Option<ApiError>) {
    let by_path = uri
        .path()
        .strip_prefix("/apps/")
        .and_then(|rest| rest.strip_suffix("/token"))
        .filter(|name| !name.contains('/'));
    let mut by_query = query_pairs(uri).filter(|(k, _)| k == "app");
    let first = by_query.next().map(|(_, v)| v.into_owned());
    let refused = if by_query.next().is_some() {
        Some(ApiError::invalid_request("app is given more than once"))
    } else if first.is_some() && by_path.is_some() {
        Some(ApiError::invalid_request("app is chosen by the path here"))
    } else {
        None
    };
    let named = by_path.map(str::to_owned).or(first);
    (
        named.or_else(|| runtime.server.default_app.clone()),
        refused,
    )
}

fn query_pairs(uri: &Uri) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
}

/// The client's request: query parameters for GET, an optional JSON body for POST.
async fn read_request(request: Request, limit: usize) -> Result<MintRequest, ApiError> {
    if request.method() == Method::GET {
        return from_query(&request);
    }
    if let Some((key, _)) = query_pairs(request.uri()).find(|(k, _)| k != "app") {
        return Err(forbidden_or_unknown(&key).unwrap_or_else(|| {
            ApiError::invalid_request("POST takes its fields in a JSON body, not the query")
        }));
    }
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .map(|mime| mime == "application/json" || mime.ends_with("+json"));
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::payload_too_large())?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(MintRequest::default());
    }
    if is_json != Some(true) {
        return Err(ApiError::invalid_request(
            "the body must be application/json",
        ));
    }
    from_json(&body)
}

/// 400 for fields a client must never send, with a reason that says why.
fn forbidden_or_unknown(key: &str) -> Option<ApiError> {
    match key {
        "identity" | "account_sid" => Some(ApiError::invalid_request(format!(
            "{key} cannot be requested: it comes from the verified caller and the app's policy"
        ))),
        "grants" | "room" | "ttl" | "platform" | "device_id" => None,
        other => Some(unknown_field(other)),
    }
}

fn unknown_field(key: &str) -> ApiError {
    ApiError::invalid_request(format!("unknown field {:?}", text::truncate(key)))
}

fn parse_grant(name: &str) -> Result<GrantKind, ApiError> {
    GrantKind::parse(name.trim()).ok_or_else(|| {
        ApiError::invalid_request(format!("unknown grant {:?}", text::truncate(name)))
    })
}

/// JSON Schema counts `1800.0` as the integer 1800, so it is accepted as such.
fn whole_seconds(value: f64) -> Option<u64> {
    // `u64::MAX as f64` rounds up to 2^64, which does not fit: the bound is exclusive.
    (value.fract() == 0.0 && (0.0..u64::MAX as f64).contains(&value)).then_some(value as u64)
}

fn once<T>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), ApiError> {
    if slot.replace(value).is_some() {
        return Err(ApiError::invalid_request(format!(
            "{key} is given more than once"
        )));
    }
    Ok(())
}

fn from_query(request: &Request) -> Result<MintRequest, ApiError> {
    let mut out = MintRequest::default();
    for (key, value) in query_pairs(request.uri()) {
        if key == "app" {
            continue;
        }
        if let Some(error) = forbidden_or_unknown(&key) {
            return Err(error);
        }
        match &*key {
            "grants" => {
                let grants = out.grants.get_or_insert_with(Vec::new);
                for name in value.split(',') {
                    grants.push(parse_grant(name)?);
                }
            }
            "room" => once(&mut out.room, "room", value.into_owned())?,
            "ttl" => {
                // Digits, optionally with a zero fraction ("600.0"), as JSON Schema counts it.
                let digits = match value.split_once('.') {
                    Some((int, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => int,
                    _ => &value,
                };
                let ttl = digits
                    .parse::<u64>()
                    .ok()
                    .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        ApiError::invalid_request("ttl must be a whole number of seconds")
                    })?;
                once(&mut out.ttl_secs, "ttl", ttl)?;
            }
            "platform" => once(&mut out.platform, "platform", value.into_owned())?,
            "device_id" => once(&mut out.device_id, "device_id", value.into_owned())?,
            // A field let through above without an arm here is refused, never misfiled.
            other => return Err(unknown_field(other)),
        }
    }
    Ok(out)
}

/// A JSON object read with each key at most once: `serde_json`'s `Map` keeps the last of a
/// repeated key, so a proxy that reads the first would see another request than the one served.
struct Fields {
    object: Map<String, Value>,
    /// The first key given twice.
    repeated: Option<String>,
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = Fields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut fields = Fields {
                    object: Map::new(),
                    repeated: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value()?;
                    if fields.object.contains_key(&key) {
                        fields.repeated.get_or_insert(key);
                    } else {
                        fields.object.insert(key, value);
                    }
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Object)
    }
}

fn from_json(body: &[u8]) -> Result<MintRequest, ApiError> {
    let object = match serde_json::from_slice::<Fields>(body) {
        Ok(Fields {
            repeated: Some(key),
            ..
        }) => {
            return Err(ApiError::invalid_request(format!(
                "{} is given more than once",
                text::truncate(&key)
            )));
        }
        Ok(fields) => fields.object,
        // Refused at its first byte when not an object: whether the rest is JSON is another read.
        Err(error)
            if error.classify() == serde_json::error::Category::Data
                && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() =>
        {
            return Err(ApiError::invalid_request("the body must be a JSON object"));
        }
        Err(_) => return Err(ApiError::invalid_request("the body is not valid JSON")),
    };
    let mut out = MintRequest::default();
    for (key, value) in &object {
        if let Some(error) = forbidden_or_unknown(key) {
            return Err(error);
        }
        if value.is_null() {
            continue;
        }
        let text = |value: &Value| {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ApiError::invalid_request(format!("{key} must be a string")))
        };
        match key.as_str() {
            "grants" => {
                let names = value
                    .as_array()
                    .ok_or_else(|| ApiError::invalid_request("grants must be an array of names"))?;
                let grants = names
                    .iter()
                    .map(|name| {
                        name.as_str()
                            .ok_or_else(|| {
                                ApiError::invalid_request("grants must be an array of names")
                            })
                            .and_then(parse_grant)
                    })
                    .collect::<Result<_, _>>()?;
                out.grants = Some(grants);
            }
            "ttl" => {
                let whole = value
                    .as_u64()
                    .or_else(|| value.as_f64().and_then(whole_seconds));
                out.ttl_secs = Some(whole.ok_or_else(|| {
                    ApiError::invalid_request("ttl must be a whole number of seconds")
                })?);
            }
            "room" => out.room = Some(text(value)?),
            "platform" => out.platform = Some(text(value)?),
            "device_id" => out.device_id = Some(text(value)?),
            other => return Err(unknown_field(other)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn details() -> TokenDetails<'static> {
        TokenDetails {
            identity: "ali\"ce",
            app: "support",
            grants: vec!["video", "voice"],
            ttl: 600,
            expires_at: "2026-12-04T10:00:00Z".into(),
        }
    }

    /// The body for `token`, after checking that it parses to the whole object.
    fn checked_body(token: &str) -> Vec<u8> {
        let body = token_body(token, &details()).unwrap();
        let expected = json!({
            "token": token,
            "identity": "ali\"ce",
            "app": "support",
            "grants": ["video", "voice"],
            "ttl": 600,
            "expires_at": "2026-12-04T10:00:00Z",
        });
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
        body
    }

    #[test]
    fn the_app_comes_from_the_path_as_sent_or_from_the_query() {
        let runtime = Runtime::new(
            crate::config::load(&crate::config::Source::default()).unwrap(),
            Default::default(),
            None,
        );
        let named = |uri: &str| {
            let (app, refused) = requested_app(&uri.parse().unwrap(), &runtime);
            (app, refused.map(|error| error.detail.into_owned()))
        };
        let app = |name: &str| Some(name.to_owned());
        assert_eq!(named("/apps/support/token"), (app("support"), None));
        assert_eq!(named("/apps/sup%70ort/token"), (app("sup%70ort"), None));
        assert_eq!(named("/token?app=support&ttl=60"), (app("support"), None));
        assert_eq!(named("/token?app=sup%70ort"), (app("support"), None));
        // Else the demo configuration's server.default_app.
        assert_eq!(named("/token"), (app("demo"), None));
        assert_eq!(named("/apps/a/b/token"), (app("demo"), None));
        let twice = Some("app is given more than once".to_owned());
        assert_eq!(named("/token?app=a&app=b"), (app("a"), twice));
        let both = Some("app is chosen by the path here".to_owned());
        assert_eq!(named("/apps/a/token?app=b"), (app("a"), both));
    }

    #[test]
    fn a_json_body_gives_each_field_once() {
        let request = from_json(br#"{"ttl":60,"room":"r1","grants":["video"]}"#).unwrap();
        assert_eq!(
            (request.ttl_secs, request.room.as_deref()),
            (Some(60), Some("r1"))
        );
        for (body, detail) in [
            (r#"{"ttl":60,"ttl":120}"#, "ttl is given more than once"),
            (
                r#"{"room":"a","ttl":1,"room":null}"#,
                "room is given more than once",
            ),
            ("[1]", "the body must be a JSON object"),
            ("\"ttl\"", "the body must be a JSON object"),
            (r#"{"ttl":60"#, "the body is not valid JSON"),
            ("[1", "the body is not valid JSON"),
            ("[1] junk", "the body is not valid JSON"),
            (r#"{"ttl":60} {}"#, "the body is not valid JSON"),
        ] {
            let error = from_json(body.as_bytes()).expect_err(body);
            assert_eq!(
                (error.status.as_u16(), error.detail.as_ref()),
                (400, detail),
                "{body}"
            );
        }
    }

    #[test]
    fn the_body_is_one_json_object_with_the_token_first() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJTSyJ9.nL7p72pxu6DCw-75aHsO6bgX_Mx3q";
        let body = checked_body(token);
        assert!(body.starts_with(format!("{{\"token\":\"{token}\",\"identity\":").as_bytes()));
    }

    #[test]
    fn a_token_that_needs_escapes_is_escaped() {
        checked_body("a\"b\\c\nd");
    }
}
