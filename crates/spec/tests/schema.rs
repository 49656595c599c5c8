//! The published JSON Schema: a valid schema that accepts good specs and rejects bad ones on its own.

use serde_json::{Value, json};
use sluice_spec::json_schema;

fn minimal_document() -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Service",
        "metadata": { "name": "checkout" },
        "spec": {
            "listen": "127.0.0.1:8080",
            "revision": { "process": { "command": ["./checkout", "--port", "{port}"] } },
            "strategy": { "canary": { "stepWeight": 10 } }
        }
    })
}

#[test]
fn is_a_valid_json_schema() {
    let schema = json_schema();
    assert!(jsonschema::meta::is_valid(&schema));
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

#[test]
fn accepts_a_good_spec_and_rejects_an_unknown_field() {
    let validator = jsonschema::validator_for(&json_schema()).unwrap();
    let good = minimal_document();
    assert!(validator.is_valid(&good));

    let mut misspelled = good;
    misspelled["spec"]["revision"]["process"]["instncs"] = json!(2);
    let errors: Vec<String> = validator
        .iter_errors(&misspelled)
        .map(|error| error.instance_path().to_string())
        .collect();
    assert_eq!(errors, ["/spec/revision/process"]);
}

#[test]
fn describes_durations_as_patterned_strings() {
    let duration = schemars::schema_for!(sluice_spec::Duration).to_value();
    assert_eq!(duration["type"], "string");
    assert!(
        duration["description"]
            .as_str()
            .is_some_and(|text| text.contains("1m30s"))
    );

    let schema = json_schema();
    let interval =
        &schema["properties"]["spec"]["properties"]["strategy"]["properties"]["canary"]["properties"]["interval"];
    assert_eq!(interval["pattern"], duration["pattern"]);
    assert_eq!(interval["examples"], json!(["30s", "1m 30s"]));
    let validator = jsonschema::validator_for(interval).unwrap();
    assert!(validator.is_valid(&json!("1m 30s")));
    assert!(!validator.is_valid(&json!("soon")));
}
