//! The `/docs` reference page, rendered once from the OpenAPI document: plain HTML and
//! CSS, nothing loaded from anywhere else.

use serde_json::Value;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `#/components/schemas/Name` → `Name`.
fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", escape(name));
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!(
                "array of {}",
                schema.get("items").map(schema_name).unwrap_or_default()
            )
        }
        Some(Value::String(t)) => escape(t),
        Some(Value::Array(ts)) => escape(
            &ts.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | "),
        ),
        _ => match schema
            .get("oneOf")
            .or_else(|| schema.get("allOf"))
            .and_then(Value::as_array)
        {
            Some(parts) => parts
                .iter()
                .map(schema_name)
                .collect::<Vec<_>>()
                .join(" | "),
            None => "object".into(),
        },
    }
}

pub fn render(doc: &Value) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Frontdesk API</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}\
         h2{border-bottom:1px solid #ddd;margin-top:2em}.op{border:1px solid #e3e3e3;border-radius:6px;padding:.6em 1em;margin:1em 0}\
         .m{font:bold 13px monospace;padding:2px 6px;border-radius:4px;color:#fff;margin-right:.5em}\
         .get{background:#2b7de9}.post{background:#2e9e5b}.patch{background:#c27c0e}.delete{background:#c0392b}.put{background:#7d3cb5}\
         code,.path{font-family:monospace}table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #e3e3e3;padding:2px 8px;text-align:left;vertical-align:top}\
         .access{color:#555;font-size:13px}</style></head><body>",
    );
    let info = &doc["info"];
    html.push_str(&format!(
        "<h1>{} <small>{}</small></h1><p>{}</p><p>The machine-readable document is at <a href=\"/openapi.json\">/openapi.json</a>.</p>",
        escape(info["title"].as_str().unwrap_or("API")),
        escape(info["version"].as_str().unwrap_or("")),
        escape(info["description"].as_str().unwrap_or("")),
    ));
    let mut by_tag: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
                let mut s = format!(
                    "<div class=\"op\" id=\"{id}\"><span class=\"m {method}\">{M}</span><span class=\"path\">{p}</span>\
                     <p>{summary}</p>",
                    id = escape(op["operationId"].as_str().unwrap_or("")),
                    M = method.to_uppercase(),
                    p = escape(path),
                    summary = escape(
                        op["description"]
                            .as_str()
                            .or(op["summary"].as_str())
                            .unwrap_or("")
                    ),
                );
                if let Some(access) = op.get("x-access").and_then(Value::as_str) {
                    s.push_str(&format!(
                        "<p class=\"access\">Access: {}</p>",
                        escape(access)
                    ));
                }
                if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                    s.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>");
                    for p in params {
                        s.push_str(&format!(
                            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            escape(p["name"].as_str().unwrap_or("")),
                            if p["required"].as_bool() == Some(true) {
                                " *"
                            } else {
                                ""
                            },
                            escape(p["in"].as_str().unwrap_or("")),
                            schema_name(&p["schema"]),
                            escape(p["description"].as_str().unwrap_or("")),
                        ));
                    }
                    s.push_str("</table>");
                }
                if let Some(body) =
                    op["requestBody"]["content"]["application/json"]["schema"].as_object()
                {
                    s.push_str(&format!(
                        "<p>Body: {}</p>",
                        schema_name(&Value::Object(body.clone()))
                    ));
                }
                if let Some(responses) = op["responses"].as_object() {
                    let list: Vec<String> = responses
                        .iter()
                        .map(|(code, r)| {
                            let schema = r["content"]
                                .as_object()
                                .and_then(|c| c.values().next())
                                .map(|c| schema_name(&c["schema"]))
                                .unwrap_or_default();
                            format!("<code>{}</code> {}", escape(code), schema)
                        })
                        .collect();
                    s.push_str(&format!("<p>Responses: {}</p>", list.join(", ")));
                }
                s.push_str("</div>");
                by_tag.entry(tag).or_default().push(s);
            }
        }
    }
    for (tag, ops) in &by_tag {
        html.push_str(&format!("<h2>{}</h2>", escape(tag)));
        for op in ops {
            html.push_str(op);
        }
    }
    html.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            html.push_str(&format!(
                "<div class=\"op\" id=\"schema-{0}\"><b>{0}</b>",
                escape(name)
            ));
            if let Some(props) = schema["properties"].as_object() {
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                html.push_str("<table><tr><th>field</th><th>type</th><th>description</th></tr>");
                for (field, p) in props {
                    html.push_str(&format!(
                        "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                        escape(field),
                        if required.contains(&field.as_str()) {
                            " *"
                        } else {
                            ""
                        },
                        schema_name(p),
                        escape(p["description"].as_str().unwrap_or("")),
                    ));
                }
                html.push_str("</table>");
            }
            if let Some(example) = schema.get("example") {
                html.push_str(&format!(
                    "<p>Example:</p><pre>{}</pre>",
                    escape(&serde_json::to_string_pretty(example).unwrap_or_default())
                ));
            }
            html.push_str("</div>");
        }
    }
    html.push_str("</body></html>");
    html
}
