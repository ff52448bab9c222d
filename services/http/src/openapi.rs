//! The OpenAPI 3.1 description of the HTTP API, built next to the router from the same
//! route table, with the schemars schemas of the bodies: a route cannot exist without its
//! documentation, and a body cannot be documented differently from how it is checked.

use crate::error::ErrorBody;
use axum::routing::MethodRouter;
use axum::Router;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

/// One documented operation.
pub struct Operation {
    method: &'static str,
    path: &'static str,
    value: Map<String, Value>,
}

/// A router and its description, grown together.
pub struct DocumentedRouter<S> {
    router: Router<S>,
    generator: SchemaGenerator,
    paths: Map<String, Value>,
}

impl<S: Clone + Send + Sync + 'static> DocumentedRouter<S> {
    pub fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
        });
        Self {
            router: Router::new(),
            generator: settings.into_generator(),
            paths: Map::new(),
        }
    }

    /// Adds a route with its documentation, built by `describe`.
    pub fn route(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<S>,
        describe: impl FnOnce(OperationBuilder<'_>) -> OperationBuilder<'_>,
    ) -> Self {
        let operation = describe(OperationBuilder {
            generator: &mut self.generator,
            operation: Operation {
                method,
                path,
                value: Map::new(),
            },
        })
        .operation;
        let item = self
            .paths
            .entry(path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item[operation.method] = Value::Object(operation.value);
        self.router = self.router.route(path, handler);
        self
    }

    pub fn into_parts(mut self, title: &str, version: &str) -> (Router<S>, Value) {
        let schemas = self.generator.take_definitions(true);
        let document = json!({
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": self.paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            },
        });
        (self.router, document)
    }
}

/// One OpenAPI document from the documents of several parts: their paths and schemas side
/// by side (a path or schema named twice must be the same in both).
pub fn merge(title: &str, version: &str, documents: impl IntoIterator<Item = Value>) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for document in documents {
        if let Some(Value::Object(more)) = document.get("paths") {
            paths.extend(more.clone());
        }
        if let Some(Value::Object(more)) = document.pointer("/components/schemas") {
            schemas.extend(more.clone());
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    })
}

impl<S: Clone + Send + Sync + 'static> Default for DocumentedRouter<S> {
    fn default() -> Self {
        Self::new()
    }
}

pub struct OperationBuilder<'g> {
    generator: &'g mut SchemaGenerator,
    operation: Operation,
}

impl OperationBuilder<'_> {
    fn set(mut self, key: &str, value: Value) -> Self {
        self.operation.value.insert(key.to_owned(), value);
        self
    }

    fn push(mut self, key: &str, value: Value) -> Self {
        let list = self
            .operation
            .value
            .entry(key.to_owned())
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(items) = list {
            items.push(value);
        }
        self
    }

    pub fn summary(self, summary: &str) -> Self {
        let id = format!(
            "{}{}",
            self.operation.method,
            self.operation.path.replace(['/', '{', '}', '-'], "_")
        );
        self.set("summary", json!(summary)).set("operationId", json!(id))
    }

    /// Requires a bearer key with `scope`; answers 401, 403 and 429 accordingly.
    pub fn scope(self, scope: &str) -> Self {
        self.set("security", json!([{"apiKey": [scope]}]))
            .error(401, "no, unknown or revoked API key")
            .error(403, &format!("the key lacks the scope {scope}"))
            .error(429, "rate limit reached; see Retry-After")
    }

    pub fn path_parameter(self, name: &str, description: &str) -> Self {
        self.push(
            "parameters",
            json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}}),
        )
    }

    pub fn header_parameter(self, name: &str, description: &str) -> Self {
        self.push(
            "parameters",
            json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}}),
        )
    }

    pub fn query_parameter(self, name: &str, required: bool, description: &str) -> Self {
        self.push(
            "parameters",
            json!({"name": name, "in": "query", "required": required, "description": description, "schema": {"type": "string"}}),
        )
    }

    pub fn json_body<T: JsonSchema>(mut self) -> Self {
        let schema = self.schema_ref::<T>();
        self.set(
            "requestBody",
            json!({"required": true, "content": {"application/json": {"schema": schema}}}),
        )
        .error(400, "the body is not JSON")
        .error(413, "the body is too large")
        .error(
            422,
            "the body breaks the rules; every problem is listed with a JSON Pointer",
        )
    }

    /// A `$ref` to `T`'s schema, registered in the components.
    pub fn schema_ref<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    pub fn body(self, content_type: &str, schema: Value) -> Self {
        self.set(
            "requestBody",
            json!({"required": true, "content": {content_type: {"schema": schema}}}),
        )
    }

    pub fn json_response<T: JsonSchema>(mut self, status: u16, description: &str) -> Self {
        let schema = self.schema_ref::<T>();
        self.response(status, description, Some(("application/json", schema)))
    }

    pub fn response(mut self, status: u16, description: &str, content: Option<(&str, Value)>) -> Self {
        let mut response = json!({"description": description});
        if let Some((content_type, schema)) = content {
            response["content"] = json!({content_type: {"schema": schema}});
        }
        let responses = self
            .operation
            .value
            .entry("responses")
            .or_insert_with(|| Value::Object(Map::new()));
        responses[status.to_string()] = response;
        self
    }

    /// OpenAPI links from a response to the operations that can use what it returns.
    pub fn links(mut self, status: u16, links: Value) -> Self {
        if let Some(response) = self
            .operation
            .value
            .get_mut("responses")
            .and_then(|r| r.get_mut(status.to_string()))
        {
            response["links"] = links;
        }
        self
    }

    pub fn error(mut self, status: u16, description: &str) -> Self {
        let schema = self.schema_ref::<ErrorBody>();
        self.response(status, description, Some(("application/json", schema)))
    }
}
