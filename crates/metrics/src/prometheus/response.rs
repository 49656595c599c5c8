//! The JSON answers of Prometheus' query API (`/api/v1/query`, `/api/v1/query_range`) and their result types.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;

/// One value at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When (Prometheus' timestamps have millisecond precision).
    pub at: Timestamp,
    /// The value; may be NaN or infinite, as PromQL allows.
    pub value: f64,
}

/// A series' labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One series of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    /// The series' labels (`__name__` included when the expression kept it).
    pub labels: Labels,
    /// Its value at the query's instant.
    pub sample: Sample,
}

/// One series of a range vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Its samples, oldest first.
    pub samples: Vec<Sample>,
}

/// What a query returned, by Prometheus' `resultType`.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    /// A single number (`scalar(…)`, a literal).
    Scalar(Sample),
    /// An instant vector: one sample per series.
    Vector(Vec<VectorSample>),
    /// A range vector: samples over time per series (range queries, or a range selector in an instant query).
    Matrix(Vec<Series>),
}

impl QueryResult {
    /// Whether the result holds no value at all.
    pub fn is_empty(&self) -> bool {
        match self {
            QueryResult::Scalar(_) => false,
            QueryResult::Vector(samples) => samples.is_empty(),
            QueryResult::Matrix(series) => series.iter().all(|s| s.samples.is_empty()),
        }
    }
}

/// Why an answer could not be read; the caller adds which query it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ResponseError {
    /// The answer is not Prometheus' envelope, or its data does not match its result type.
    Parse(String),
    /// Prometheus said `status: error`.
    Failed(String),
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// `[<unix seconds>, "<value>"]`.
type RawPoint = (f64, String);

#[derive(Deserialize)]
struct RawVectorItem {
    #[serde(default)]
    metric: Labels,
    value: RawPoint,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: Labels,
    values: Vec<RawPoint>,
}

/// Prometheus' explanation in an error answer (`errorType: error`), or the body itself when it is not JSON.
pub(crate) fn error_detail(body: &str) -> String {
    match serde_json::from_str::<Envelope>(body) {
        Ok(Envelope { error_type, error, .. }) if error.is_some() => format!(
            "{}: {}",
            error_type.unwrap_or_else(|| "error".into()),
            error.unwrap_or_default()
        ),
        _ => body.chars().take(300).collect(),
    }
}

/// Reads a successful answer's result.
pub(crate) fn parse(body: &str) -> Result<QueryResult, ResponseError> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|e| ResponseError::Parse(e.to_string()))?;
    if envelope.status != "success" {
        return Err(ResponseError::Failed(error_detail(body)));
    }
    let data = envelope
        .data
        .ok_or_else(|| ResponseError::Parse("`status: success` without `data`".into()))?;
    let shape = |e: serde_json::Error| ResponseError::Parse(format!("{} result: {e}", data.result_type));
    match data.result_type.as_str() {
        "scalar" => {
            let point: RawPoint = serde_json::from_value(data.result.clone()).map_err(shape)?;
            Ok(QueryResult::Scalar(sample(point)?))
        }
        "vector" => {
            let items: Vec<RawVectorItem> = serde_json::from_value(data.result.clone()).map_err(shape)?;
            let samples = items
                .into_iter()
                .map(|item| {
                    Ok(VectorSample {
                        labels: item.metric,
                        sample: sample(item.value)?,
                    })
                })
                .collect::<Result<_, ResponseError>>()?;
            Ok(QueryResult::Vector(samples))
        }
        "matrix" => {
            let items: Vec<RawSeries> = serde_json::from_value(data.result.clone()).map_err(shape)?;
            let series = items
                .into_iter()
                .map(|item| {
                    Ok(Series {
                        labels: item.metric,
                        samples: item.values.into_iter().map(sample).collect::<Result<_, _>>()?,
                    })
                })
                .collect::<Result<_, ResponseError>>()?;
            Ok(QueryResult::Matrix(series))
        }
        other => Err(ResponseError::Parse(format!(
            "result type `{other}`; expected scalar, vector or matrix"
        ))),
    }
}

fn sample((seconds, value): RawPoint) -> Result<Sample, ResponseError> {
    let at = Timestamp::from_millisecond((seconds * 1000.0).round() as i64)
        .map_err(|e| ResponseError::Parse(format!("timestamp {seconds}: {e}")))?;
    // Prometheus writes NaN, +Inf and -Inf; Rust's parser reads them case-insensitively.
    let value = value
        .parse::<f64>()
        .map_err(|_| ResponseError::Parse(format!("value {value:?} is not a number")))?;
    Ok(Sample { at, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).unwrap()
    }

    #[test]
    fn reads_a_scalar() {
        let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"42.25"]}}"#;
        assert_eq!(
            parse(body).unwrap(),
            QueryResult::Scalar(Sample {
                at: at(1_700_000_000_500),
                value: 42.25
            })
        );
    }

    #[test]
    fn reads_a_vector_with_labels_and_special_values() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"le":"0.5","service":"web"},"value":[1700000000.123,"+Inf"]},
            {"metric":{},"value":[1700000000.123,"NaN"]},
            {"metric":{"le":"+Inf"},"value":[1700000000.123,"-Inf"]}
        ]},"warnings":["ignored"]}"#;
        let QueryResult::Vector(samples) = parse(body).unwrap() else {
            panic!("a vector")
        };
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels.get("le").map(String::as_str), Some("0.5"));
        assert_eq!(samples[0].labels.get("service").map(String::as_str), Some("web"));
        assert_eq!(samples[0].sample.at, at(1_700_000_000_123));
        assert_eq!(samples[0].sample.value, f64::INFINITY);
        assert!(samples[1].sample.value.is_nan());
        assert!(samples[1].labels.is_empty());
        assert_eq!(samples[2].sample.value, f64::NEG_INFINITY);
    }

    #[test]
    fn reads_a_matrix() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"class":"2xx"},"values":[[1700000000,"1"],[1700000001,"3"]]},
            {"metric":{"class":"5xx"},"values":[]}
        ]}}"#;
        let result = parse(body).unwrap();
        assert!(!result.is_empty());
        let QueryResult::Matrix(series) = result else {
            panic!("a matrix")
        };
        assert_eq!(series[0].labels.get("class").map(String::as_str), Some("2xx"));
        assert_eq!(
            series[0].samples,
            vec![
                Sample {
                    at: at(1_700_000_000_000),
                    value: 1.0
                },
                Sample {
                    at: at(1_700_000_001_000),
                    value: 3.0
                }
            ]
        );
        assert!(series[1].samples.is_empty());
    }

    #[test]
    fn empty_results_are_recognised() {
        for (result_type, result) in [
            ("vector", "[]"),
            ("matrix", "[]"),
            ("matrix", r#"[{"metric":{},"values":[]}]"#),
        ] {
            let body = format!(r#"{{"status":"success","data":{{"resultType":"{result_type}","result":{result}}}}}"#);
            assert!(parse(&body).unwrap().is_empty(), "{body}");
        }
    }

    #[test]
    fn an_error_answer_gives_prometheus_explanation() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error: unexpected end of input"}"#;
        assert_eq!(
            parse(body),
            Err(ResponseError::Failed(
                "bad_data: parse error: unexpected end of input".into()
            ))
        );
        assert_eq!(error_detail("<html>gateway</html>"), "<html>gateway</html>");
    }

    #[test]
    fn malformed_answers_say_what_is_wrong() {
        let cases = [
            ("not json", "expected ident"),
            (r#"{"status":"success"}"#, "`status: success` without `data`"),
            (
                r#"{"status":"success","data":{"resultType":"string","result":[1,"a"]}}"#,
                "result type `string`; expected scalar, vector or matrix",
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":{"a":1}}}"#,
                "vector result: invalid type: map",
            ),
            (
                r#"{"status":"success","data":{"resultType":"scalar","result":[1,"many"]}}"#,
                r#"value "many" is not a number"#,
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}"#,
                "vector result: missing field `value`",
            ),
        ];
        for (body, expected) in cases {
            match parse(body) {
                Err(ResponseError::Parse(detail)) => assert!(detail.contains(expected), "{body}: {detail}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
