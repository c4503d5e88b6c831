//! Drift between `openapi.yaml` and the router: every documented operation is routed, nothing
//! else answers on a documented path, the request fields the file lists are the ones the server
//! takes, and the response bodies have exactly the documented properties.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The routes of `src/http/mod.rs` (`token_router` and `ops_router`), as `(method, path)`.
/// When a route is added, removed or changed, update the router, this list and `openapi.yaml`
/// together: the tests below fail until all three agree.
const ROUTES: [(&str, &str); 8] = [
    ("get", "/token"),
    ("post", "/token"),
    ("get", "/apps/{app}/token"),
    ("post", "/apps/{app}/token"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/webhooks/verify"),
];

/// Methods an OpenAPI path item may define. HEAD and OPTIONS are left out: axum answers HEAD
/// for every GET route, and OPTIONS is the CORS preflight.
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Request fields, each with a value the standard configuration accepts on its own: the query
/// form (GET) and the JSON form (POST).
fn field_examples() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("grants", "voice", json!(["voice"])),
        ("room", "support-1", json!("support-1")),
        ("ttl", "600", json!(600)),
        ("platform", "ios", json!("ios")),
        ("device_id", "ipad-1", json!("ipad-1")),
    ]
}

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml at the repository root");
    serde_norway::from_str(&text).expect("openapi.yaml is valid YAML")
}

/// Follows `$ref`s (local JSON pointers) until a value that is not a reference.
fn resolve<'a>(spec: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references are supported: {reference}"));
        value = spec
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling reference {reference}"));
    }
    value
}

/// Every `(method, path)` the file documents.
fn documented_operations(spec: &Value) -> BTreeSet<(String, String)> {
    let paths = spec["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .into_iter()
                .filter(|method| item.get(*method).is_some())
                .map(move |method| (method.to_owned(), path.clone()))
        })
        .collect()
}

fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &spec["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    operation
}

/// The documented response for `status`, references resolved.
fn response<'a>(spec: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let responses = &operation(spec, method, path)["responses"];
    let response = responses
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {path} does not document status {status}"));
    resolve(spec, response)
}

/// The property names of the schema of `response` under `content_type`.
fn schema_properties(spec: &Value, response: &Value, content_type: &str) -> BTreeSet<String> {
    let schema = resolve(spec, &response["content"][content_type]["schema"]);
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("the {content_type} schema lists no properties: {schema}"));
    properties.keys().cloned().collect()
}

/// The parameters of an operation, path-level ones included, references resolved.
fn parameters<'a>(spec: &'a Value, method: &str, path: &str) -> Vec<&'a Value> {
    let path_level = spec["paths"][path]["parameters"].as_array();
    let operation_level = operation(spec, method, path)["parameters"].as_array();
    path_level
        .into_iter()
        .chain(operation_level)
        .flatten()
        .map(|p| resolve(spec, p))
        .collect()
}

fn query_parameter_names(spec: &Value, method: &str, path: &str) -> BTreeSet<String> {
    parameters(spec, method, path)
        .into_iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().expect("parameter name").to_owned())
        .collect()
}

fn body_field_names(spec: &Value, method: &str, path: &str) -> BTreeSet<String> {
    let body = resolve(spec, &operation(spec, method, path)["requestBody"]);
    let schema = resolve(spec, &body["content"]["application/json"]["schema"]);
    assert_eq!(
        schema["additionalProperties"],
        json!(false),
        "{method} {path}: the body refuses unknown fields"
    );
    schema["properties"]
        .as_object()
        .expect("body properties")
        .keys()
        .cloned()
        .collect()
}

/// A concrete URL path for a documented path template.
fn concrete(path: &str) -> String {
    path.replace("{app}", "support")
}

/// Sends `method path` with no credential; returns the status and the problem `code`, if any.
async fn probe(app: &TestApp, method: &str, path: &str) -> (u16, Option<String>) {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let response = app
        .client
        .request(method, app.url(&concrete(path)))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().map(str::to_owned))
}

/// Every path the router source registers with `.route("…"`, so a route added in code without
/// touching this file or openapi.yaml fails the test below.
fn paths_in_router_source() -> BTreeSet<String> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).unwrap();
    let mut paths = BTreeSet::new();
    let mut rest = source.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let quoted = rest.trim_start().strip_prefix('"').unwrap();
        paths.insert(quoted[..quoted.find('"').unwrap()].to_owned());
    }
    paths
}

#[test]
fn the_route_list_matches_the_paths_in_the_router_source() {
    let listed: BTreeSet<String> = ROUTES.iter().map(|(_, path)| path.to_string()).collect();
    assert_eq!(listed, paths_in_router_source());
}

#[test]
fn the_file_documents_exactly_the_routes_the_router_serves() {
    let documented = documented_operations(&spec());
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        documented, routed,
        "openapi.yaml and the route list of src/http/mod.rs disagree"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_answers_a_documented_status() {
    let spec = spec();
    let app = spawn_app().await;
    // The fallback codes this test looks for really are what an unrouted request gets.
    assert_eq!(
        probe(&app, "get", "/apps/support/tokens").await,
        (404, Some("not_found".into()))
    );

    for (method, path) in documented_operations(&spec) {
        let (status, code) = probe(&app, &method, &path).await;
        assert!(
            !matches!(code.as_deref(), Some("not_found" | "method_not_allowed")),
            "{method} {path} is documented but not routed: {status} {code:?}"
        );
        response(&spec, &method, &path, status);
    }
}

#[tokio::test]
async fn methods_a_documented_path_does_not_list_answer_405() {
    let spec = spec();
    let app = spawn_app().await;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS.into_iter().filter(|m| item.get(*m).is_none()) {
            assert_eq!(
                probe(&app, method, path).await,
                (405, Some("method_not_allowed".into())),
                "{method} {path} is not documented, yet it is routed"
            );
        }
    }
}

#[tokio::test]
async fn the_documented_request_fields_are_the_ones_the_server_takes() {
    let spec = spec();
    let app = spawn_app().await;
    let fields: BTreeSet<String> = field_examples()
        .iter()
        .map(|(name, _, _)| name.to_string())
        .collect();

    for path in ["/token", "/apps/{app}/token"] {
        let mut query = query_parameter_names(&spec, "get", path);
        query.remove("app");
        assert_eq!(query, fields, "GET {path} query parameters");
        assert_eq!(
            body_field_names(&spec, "post", path),
            fields,
            "POST {path} body fields"
        );
    }
    assert_eq!(
        query_parameter_names(&spec, "post", "/apps/{app}/token"),
        BTreeSet::new(),
        "POST takes its fields in the body"
    );

    let bearer = token_for("alice");
    for (name, query_value, json_value) in field_examples() {
        let url = format!("/apps/support/token?{name}={query_value}");
        let response = app.get(&url, Some(&bearer)).await;
        expect(response, 200).await;
        let body = json!({ name: json_value });
        let response = app
            .post("/apps/support/token", Some(&bearer), Some(body))
            .await;
        expect(response, 200).await;
    }

    let response = app
        .post(
            "/apps/support/token",
            Some(&bearer),
            Some(json!({"bogus": 1})),
        )
        .await;
    expect_problem(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_minted_token_response_has_exactly_the_documented_properties_and_headers() {
    let spec = spec();
    let app = spawn_app().await;
    let documented = response(&spec, "post", "/apps/{app}/token", 200);

    let response = app
        .post("/apps/support/token", Some(&token_for("alice")), None)
        .await;
    for header in documented["headers"].as_object().unwrap().keys() {
        assert!(
            response.headers().contains_key(header.as_str()),
            "documented header {header} is missing"
        );
    }
    let body = expect(response, 200).await;
    let properties: BTreeSet<String> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        properties,
        schema_properties(&spec, documented, "application/json")
    );
}

#[tokio::test]
async fn a_problem_response_has_exactly_the_documented_properties_and_headers() {
    let spec = spec();
    let app = spawn_app().await;
    let documented = response(&spec, "post", "/apps/{app}/token", 401);

    let response = app.post("/apps/support/token", None, None).await;
    for header in documented["headers"].as_object().unwrap().keys() {
        assert!(
            response.headers().contains_key(header.as_str()),
            "documented header {header} is missing"
        );
    }
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let body = expect_problem(response, 401, "unauthenticated").await;
    let properties: BTreeSet<String> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        properties,
        schema_properties(&spec, documented, "application/problem+json")
    );
    let codes = &resolve(
        &spec,
        &documented["content"]["application/problem+json"]["schema"],
    )["properties"]["code"]["enum"];
    assert!(
        codes.as_array().unwrap().contains(&body["code"]),
        "code {} is not in the documented list",
        body["code"]
    );
}
