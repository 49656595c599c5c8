//! PromQL query templates with Flagger-style variables, substituted safely.
//!
//! A template is PromQL with `{{service}}`, `{{revision}}` and `{{interval}}` in it (spaces inside the braces
//! allowed, as in Flagger's `{{ target }}`). The template is checked when it is parsed: every variable must be
//! known, and a label value (`service`, `revision`) must sit inside a `"…"` or `'…'` string, where it is
//! escaped for that string — and, after `=~` or `!~`, escaped as a regular expression too — so that no name
//! can change what the query means. `interval` is a PromQL duration Sluice writes itself (`60s`, `1500ms`).

use std::fmt::Write as _;
use std::time::Duration;

use thiserror::Error;

/// Why a template was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `{{` without a matching `}}`.
    #[error("query template: `{{{{` at byte {at} is not closed by `}}}}`")]
    Unclosed {
        /// Byte offset of the `{{`.
        at: usize,
    },
    /// A variable other than `service`, `revision` or `interval`.
    #[error("query template: unknown variable `{name}` at byte {at}; expected service, revision or interval")]
    UnknownVariable {
        /// The name between the braces.
        name: String,
        /// Byte offset of the `{{`.
        at: usize,
    },
    /// A label value outside a quoted string could not be escaped.
    #[error(
        "query template: `{{{{{name}}}}}` at byte {at} must be inside a \"…\" or '…' string, e.g. {{service=\"{{{{{name}}}}}\"}}"
    )]
    Unquoted {
        /// The variable.
        name: String,
        /// Byte offset of the `{{`.
        at: usize,
    },
    /// Backtick strings have no escapes, so a value with a backtick would end them.
    #[error("query template: `{{{{{name}}}}}` at byte {at} is in a `…` raw string, which cannot be escaped; use \"…\"")]
    RawString {
        /// The variable.
        name: String,
        /// Byte offset of the `{{`.
        at: usize,
    },
    /// A string literal that never ends.
    #[error("query template: the string opened at byte {at} is not closed")]
    UnclosedString {
        /// Byte offset of the opening quote.
        at: usize,
    },
}

/// The values substituted into a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateVars<'a> {
    /// The service's name, for `{{service}}`.
    pub service: &'a str,
    /// The revision's name, for `{{revision}}`.
    pub revision: &'a str,
    /// The range, for `{{interval}}`; written in whole milliseconds, at least `1ms`.
    pub interval: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Service,
    Revision,
    Interval,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// A variable, with the string it sits in (its quote) and whether that string is a regular expression.
    Var {
        var: Var,
        quote: Option<char>,
        regex: bool,
    },
}

/// A checked query template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTemplate {
    text: String,
    segments: Vec<Segment>,
}

/// Where the scanner is in the PromQL text between placeholders.
#[derive(Clone, Copy)]
enum Context {
    Code,
    Comment,
    String {
        quote: char,
        opened_at: usize,
        regex: bool,
        escaped: bool,
    },
}

impl QueryTemplate {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut context = Context::Code;
        let mut rest = text;
        let mut offset = 0;
        while !rest.is_empty() {
            if rest.starts_with("{{") && !matches!(context, Context::Comment) {
                let close = rest.find("}}").ok_or(TemplateError::Unclosed { at: offset })?;
                let name = rest[2..close].trim();
                let var = match name {
                    "service" => Var::Service,
                    "revision" => Var::Revision,
                    "interval" => Var::Interval,
                    _ => {
                        return Err(TemplateError::UnknownVariable {
                            name: name.to_owned(),
                            at: offset,
                        });
                    }
                };
                let (quote, regex) = match context {
                    Context::String { quote, regex, .. } => (Some(quote), regex),
                    _ => (None, false),
                };
                if var != Var::Interval {
                    match quote {
                        None => {
                            return Err(TemplateError::Unquoted {
                                name: name.to_owned(),
                                at: offset,
                            });
                        }
                        Some('`') => {
                            return Err(TemplateError::RawString {
                                name: name.to_owned(),
                                at: offset,
                            });
                        }
                        Some(_) => {}
                    }
                }
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Var { var, quote, regex });
                offset += close + 2;
                rest = &rest[close + 2..];
                continue;
            }
            let Some(c) = rest.chars().next() else { break };
            context = advance(context, c, offset, &literal);
            literal.push(c);
            offset += c.len_utf8();
            rest = &rest[c.len_utf8()..];
        }
        if let Context::String { opened_at, .. } = context {
            return Err(TemplateError::UnclosedString { at: opened_at });
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(QueryTemplate {
            text: text.to_owned(),
            segments,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The query with every variable substituted and escaped for where it stands.
    pub fn render(&self, vars: &TemplateVars<'_>) -> String {
        let mut query = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => query.push_str(text),
                Segment::Var { var, quote, regex } => match var {
                    Var::Interval => query.push_str(&promql_duration(vars.interval)),
                    Var::Service | Var::Revision => {
                        let value = if *var == Var::Service {
                            vars.service
                        } else {
                            vars.revision
                        };
                        let value = if *regex { regex_escape(value) } else { value.to_owned() };
                        // Parsing refused label values outside "…" and '…' strings.
                        string_escape(&mut query, &value, quote.unwrap_or('"'));
                    }
                },
            }
        }
        query
    }
}

/// The scanner's context after `c`; `before` is the literal text since the last placeholder, to tell whether a
/// string follows a regex matcher.
fn advance(context: Context, c: char, offset: usize, before: &str) -> Context {
    match context {
        Context::Code => match c {
            '"' | '\'' | '`' => Context::String {
                quote: c,
                opened_at: offset,
                regex: {
                    let before = before.trim_end();
                    before.ends_with("=~") || before.ends_with("!~")
                },
                escaped: false,
            },
            '#' => Context::Comment,
            _ => Context::Code,
        },
        Context::Comment if c == '\n' => Context::Code,
        Context::Comment => Context::Comment,
        Context::String {
            quote,
            opened_at,
            regex,
            escaped,
        } => {
            if escaped {
                Context::String {
                    quote,
                    opened_at,
                    regex,
                    escaped: false,
                }
            } else if c == quote {
                Context::Code
            } else {
                Context::String {
                    quote,
                    opened_at,
                    regex,
                    // Raw strings have no escapes.
                    escaped: c == '\\' && quote != '`',
                }
            }
        }
    }
}

/// A duration in PromQL syntax: whole seconds as `Ns`, else whole milliseconds (PromQL refuses `0s`).
pub fn promql_duration(duration: Duration) -> String {
    let ms = duration.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Escapes RE2's metacharacters (Go's `regexp.QuoteMeta`), so a name matches itself only.
fn regex_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Appends `value` escaped for a PromQL string delimited by `quote` (PromQL's lexer accepts `\\`, the quote,
/// the C escapes and `\xNN`).
fn string_escape(out: &mut String, value: &str, quote: char) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(service: &'a str, revision: &'a str, secs: u64) -> TemplateVars<'a> {
        TemplateVars {
            service,
            revision,
            interval: Duration::from_secs(secs),
        }
    }

    fn render(template: &str, vars: TemplateVars<'_>) -> String {
        QueryTemplate::parse(template).unwrap().render(&vars)
    }

    #[test]
    fn substitutes_every_variable_with_or_without_spaces() {
        let query = render(
            r#"sum(increase(x{service="{{service}}",revision="{{ revision }}"}[{{interval}}])) / {{  interval}}"#,
            vars("web", "v2", 60),
        );
        assert_eq!(query, r#"sum(increase(x{service="web",revision="v2"}[60s])) / 60s"#);
    }

    #[test]
    fn text_without_variables_is_unchanged() {
        let text = "sum(rate(up[5m])) # a {comment} with \"quotes\n+ 1";
        assert_eq!(render(text, vars("a", "b", 1)), text);
    }

    #[test]
    fn label_values_are_escaped_for_their_quotes() {
        let nasty = "a\"b'c\\d\ne\tf\u{1}g";
        assert_eq!(
            render(r#"x{service="{{service}}"}"#, vars(nasty, "", 1)),
            r#"x{service="a\"b'c\\d\ne\tf\x01g"}"#
        );
        assert_eq!(
            render("x{service='{{service}}'}", vars(nasty, "", 1)),
            r#"x{service='a"b\'c\\d\ne\tf\x01g'}"#
        );
    }

    #[test]
    fn an_injection_stays_inside_its_string() {
        let query = render(
            r#"x{revision="{{revision}}"}"#,
            vars("", r#"v1"} or vector(1) or x{a=""#, 1),
        );
        assert_eq!(query, r#"x{revision="v1\"} or vector(1) or x{a=\""}"#);
    }

    #[test]
    fn values_after_regex_matchers_are_regex_escaped_too() {
        assert_eq!(
            render(
                r#"x{pod=~"{{service}}-[0-9]+", b!~ '{{revision}}'}"#,
                vars("a.b", "v(1)|*", 1)
            ),
            r#"x{pod=~"a\\.b-[0-9]+", b!~ 'v\\(1\\)\\|\\*'}"#
        );
        // An equality matcher is not a regex: the dot stays as it is.
        assert_eq!(render(r#"x{a="{{service}}"}"#, vars("a.b", "", 1)), r#"x{a="a.b"}"#);
    }

    #[test]
    fn escaped_quotes_in_the_template_do_not_end_its_strings() {
        assert_eq!(
            render(r#"x{a="say \"{{service}}\""}"#, vars("hi", "", 1)),
            r#"x{a="say \"hi\""}"#
        );
    }

    #[test]
    fn intervals_are_promql_durations() {
        assert_eq!(promql_duration(Duration::from_secs(60)), "60s");
        assert_eq!(promql_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(promql_duration(Duration::from_micros(1_500_700)), "1500ms");
        assert_eq!(promql_duration(Duration::ZERO), "1ms");
        assert_eq!(promql_duration(Duration::from_micros(10)), "1ms");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let cases = [
            ("x[{{interval]", "query template: `{{` at byte 2 is not closed by `}}`"),
            (
                r#"x{a="{{target}}"}"#,
                "query template: unknown variable `target` at byte 5; expected service, revision or interval",
            ),
            (
                "x{a={{service}}}",
                "query template: `{{service}}` at byte 4 must be inside a \"…\" or '…' string, e.g. {service=\"{{service}}\"}",
            ),
            (
                "x{a=`{{revision}}`}",
                "query template: `{{revision}}` at byte 5 is in a `…` raw string, which cannot be escaped; use \"…\"",
            ),
            (
                r#"x{a="b}"#,
                "query template: the string opened at byte 4 is not closed",
            ),
        ];
        for (template, message) in cases {
            assert_eq!(
                QueryTemplate::parse(template).unwrap_err().to_string(),
                message,
                "{template}"
            );
        }
    }

    #[test]
    fn a_placeholder_in_a_comment_is_text() {
        let text = "up # {{target}} is not a variable here";
        assert_eq!(render(text, vars("a", "b", 1)), text);
    }

    #[test]
    fn keeps_the_text_as_written() {
        let text = r#"x{a="{{service}}"}"#;
        assert_eq!(QueryTemplate::parse(text).unwrap().as_str(), text);
    }
}
