//! The OpenAPI document as served (`router::document`) checked against the OpenAPI 3.1
//! rules a validator applies and against what the server really answers (issue 12, item
//! 7). Schemathesis validates it too, and fuzzes the server against it (`.ci/fuzz`).

use std::collections::{BTreeSet, HashMap};

use frontdesk_server::{access::Access, router};
use serde_json::Value;

fn document() -> Value {
    let (_, openapi, _) = router::api().into_parts();
    router::document(&openapi)
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            assert!(
                METHODS.contains(&method.as_str()),
                "{path}: `{method}` is not an HTTP method"
            );
            out.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    assert!(out.len() > 50, "the document lists the API");
    out
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut ids: HashMap<String, String> = HashMap::new();
    for (method, path, operation) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        // operationId: present and unique.
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no operationId"));
        if let Some(other) = ids.insert(id.to_owned(), name.clone()) {
            panic!("operationId {id} names both {other} and {name}");
        }
        // Every response has a description (required by OpenAPI), a status or `default`.
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: no responses"));
        assert!(!responses.is_empty(), "{name}: no responses");
        for (status, response) in responses {
            assert!(
                status == "default"
                    || (status.len() == 3
                        && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s))),
                "{name}: response key {status}"
            );
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{name}: response {status} has no description"
            );
        }
        // Path parameters: each `{name}` of the template declared once, required.
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let declared: BTreeSet<&str> = parameters
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("a parameter name"))
            .collect();
        assert_eq!(templated, declared, "{name}: path parameters");
        let mut seen = BTreeSet::new();
        for p in &parameters {
            let (pname, location) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
            assert!(
                ["path", "query", "header", "cookie"].contains(&location),
                "{name}: parameter {pname} in {location}"
            );
            assert!(
                seen.insert((pname, location)),
                "{name}: {pname} declared twice"
            );
            if location == "path" {
                assert_eq!(
                    p["required"], true,
                    "{name}: path parameter {pname} not required"
                );
            }
            // A parameter is text on the wire: it cannot be null.
            let types = &p["schema"]["type"];
            assert!(
                !(types == "null" || types.as_array().is_some_and(|t| t.contains(&"null".into()))),
                "{name}: parameter {pname} typed null"
            );
        }
    }
    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "$ref {r} resolves to nothing"
        );
    }
}

#[test]
fn every_operation_declares_the_problems_it_can_answer() {
    let doc = document();
    let callback = Access::Callback.describe();
    for (method, path, operation) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        let responses = operation["responses"].as_object().unwrap();
        let has = |status: &str| responses.contains_key(status);
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for status in ["400", "401", "422"] {
            assert!(has(status), "{name}: no {status}");
        }
        if operation["x-access"] != callback {
            assert!(has("403"), "{name}: no 403");
        }
        if parameters.iter().any(|p| p["in"] == "path") {
            assert!(has("404"), "{name}: a path parameter but no 404");
        }
        if operation.get("requestBody").is_some() {
            for status in ["413", "415"] {
                assert!(has(status), "{name}: a body but no {status}");
            }
        }
        if method != "get" && operation["x-access"] != callback {
            assert!(has("409"), "{name}: a write but no 409");
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let content = response["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{name}: {status} without content"));
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{name}: {status} is not a problem"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{name}: {status}"
                );
            }
        }
    }
    // The writes that count against the tenant's limits declare 429.
    for (method, path) in [
        ("post", "/v1/tenants/{tenant}/conversations/{id}/messages"),
        ("post", "/v1/tenants/{tenant}/usage"),
        ("post", "/v1/tenants/{tenant}/limits/check"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"].get("429").is_some(),
            "{method} {path}: no 429"
        );
    }
}

#[test]
fn csv_is_declared_where_it_is_offered() {
    let doc = document();
    let analytics: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(_, path, _)| path.contains("/analytics/"))
        .collect();
    assert_eq!(analytics.len(), 5);
    // And every GET of /usage/… (issue 13, item 7).
    let usage: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(method, path, _)| *method == "get" && path.contains("/usage/"))
        .collect();
    assert!(usage.len() >= 4, "daily, today, monthly, events");
    for (_, path, operation) in analytics.into_iter().chain(usage) {
        let content = operation["responses"]["200"]["content"]
            .as_object()
            .unwrap();
        assert!(content.contains_key("application/json"), "{path}");
        assert_eq!(content["text/csv"]["schema"]["type"], "string", "{path}");
    }
}

#[test]
fn rules_stated_in_prose_are_in_the_schemas() {
    let doc = document();
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path}: no {name}"))["schema"]
            .clone()
    };
    let limit = param("/v1/tenants/{tenant}/contacts", "limit");
    assert_eq!(
        (limit["minimum"].as_i64(), limit["maximum"].as_i64()),
        (Some(1), Some(200))
    );
    let days = param("/v1/tenants/{tenant}/usage/daily", "days");
    assert_eq!(
        (days["minimum"].as_i64(), days["maximum"].as_i64()),
        (Some(1), Some(366))
    );
    let order = param("/v1/tenants/{tenant}/conversations/{id}/messages", "order");
    assert_eq!(order["pattern"], "^(asc|desc)$");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["NewMember"]["properties"]["role"]["pattern"],
        "^(owner|admin|agent|member)$"
    );
    assert_eq!(
        schemas["ContactInput"]["properties"]["lead_score"]["maximum"],
        100
    );
    assert_eq!(
        schemas["NewApiKey"]["properties"]["scopes"]["items"]["enum"],
        serde_json::json!(["full", "read"])
    );
    assert_eq!(
        schemas["NewFlow"]["properties"]["key"]["pattern"],
        "^[a-z][a-z0-9_]{1,62}$"
    );
    // Fields the server refuses as null are not typed as nullable.
    for (schema, field) in [
        ("TenantInput", "slug"),
        ("ContactInput", "attributes"),
        ("ConversationInput", "metadata"),
        ("AssistantInput", "settings"),
    ] {
        let typed = &schemas[schema]["properties"][field];
        assert!(
            !typed.to_string().contains("\"null\""),
            "{schema}.{field} is typed nullable: {typed}"
        );
    }
    // Free-form fields are declared as what they are: any JSON.
    let conversation = &schemas["Conversation"]["properties"];
    assert_eq!(
        conversation["answered_questions"]["items"],
        serde_json::json!({})
    );
    assert!(conversation["parsed_intent"].get("type").is_none());
}
