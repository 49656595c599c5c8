//! What the demo prints: the path every release walks, a line a second of what users see, the stages' reports and
//! the summary. Pure formatting, so the wording is tested without running a daemon.

use std::fmt::Write;
use std::time::Duration;

use sluice_demo::load::{LoadSnapshot, LoadWindow};
use sluice_engine::Phase;
use sluice_shadow::DiffReport;

use super::spec::{LOAD_TEST_SECS, SHADOW_SECS, SHADOW_SHARE, STEPS};
use super::story::Release;
use crate::cli::render::outcome_word;
use crate::model::ServiceStatus;

/// Users' GETs for every POST in the demo's load.
pub const GETS_PER_POST: usize = 2;

/// The path every release walks, printed once before the first one.
pub fn intro(rate: f64, interval: Duration) -> String {
    let steps = STEPS.map(|step| format!("{step}%")).join(", ");
    format!(
        "Users send {rate:.0} requests/s through the proxy: GET /api/items/{{id}} ({GETS_PER_POST} in {}) and POST \
         /api/items/{{id}} (1 in {}).\n\
         Every revision after the first walks the same path before it serves everyone:\n  \
         1. isolation  smoke checks, then a {LOAD_TEST_SECS}s load test (50 GETs/s) straight at the candidate, held \
         to its SLO (99% ok, p99 under 200ms). No user request reaches it.\n  \
         2. shadow     for {SHADOW_SECS}s, {SHADOW_SHARE}% of users' GETs are copied to the candidate and to a second \
         instance of the stable revision;\n                \
         users get the stable's answer. The answers are compared field by field: a field that also differs between \
         the two\n                \
         stable answers (a request id, a timestamp) is noise. POSTs are never copied.\n  \
         3. canary     {steps} of users, {}s a step, judged on what users get; then promoted, or rolled back.",
        GETS_PER_POST + 1,
        GETS_PER_POST + 1,
        interval.as_secs_f64()
    )
}

/// One line a second: the phase, who gets users' requests, and what users got from each revision.
pub fn traffic_line(status: &ServiceStatus, window: &LoadWindow) -> String {
    let stable = status.stable.as_ref().map_or("-", |r| r.name.as_str());
    let mut line = format!(
        "{:<12} users: {stable} {}%",
        status.display_phase,
        100 - u32::from(status.weight)
    );
    if let Some(candidate) = &status.candidate {
        let _ = write!(line, " / {} {}%", candidate.name, status.weight);
        if status.phase == Phase::Shadow {
            let _ = write!(line, " (+{SHADOW_SHARE}% of GETs copied to it)");
        }
    }
    line.push_str("  |");
    for revision in &window.revisions {
        let success = revision
            .success_ratio()
            .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0));
        let _ = write!(
            line,
            "  {} answered {:>3.0}/s {success} ok",
            revision.revision,
            revision.request_rate(window.span),
        );
    }
    line
}

/// The shadow stage's comparison: every field that differed, noise or real, with an example of a real one.
pub fn shadow_report(report: &DiffReport, stable: &str, candidate: &str) -> String {
    let mut out = format!(
        "  shadow report: {} requests compared, {} with a real difference ({:.2}%)\n",
        report.compared, report.with_real_difference, report.diff_rate
    );
    let _ = writeln!(
        out,
        "    {:<14} {:>16} {:>16}",
        "field",
        format!("{candidate} vs {stable}"),
        format!("{stable} vs {stable}")
    );
    for field in report.fields.iter().take(8) {
        let verdict = if field.real {
            "REAL difference"
        } else {
            "noise, cancelled"
        };
        let _ = writeln!(
            out,
            "    {:<14} {:>15.1}% {:>15.1}%  {verdict}",
            field.field, field.candidate_rate, field.noise_rate
        );
        if let Some(example) = field.examples.first().filter(|_| field.real) {
            let _ = writeln!(
                out,
                "      e.g. {}: {stable} {}, {candidate} {}",
                example.request, example.primary, example.candidate
            );
        }
    }
    if report.fields.is_empty() {
        out.push_str("    no field differed\n");
    }
    out
}

/// The line that ends a release.
pub fn release_end(release: &Release) -> String {
    let path = release
        .phases
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ");
    format!(
        "  => {} {} after {:.0}s, having answered {} user requests ({} failed)\n     its path: {path}",
        release.revision,
        outcome_word(release.outcome),
        release.took.as_secs_f64(),
        release.users_served,
        release.users_failed
    )
}

/// The table at the end.
pub fn summary(releases: &[Release], total: &LoadSnapshot, elapsed: Duration) -> String {
    let mut out = format!("\n== Summary ({:.0}s)\n", elapsed.as_secs_f64());
    let _ = writeln!(
        out,
        "  {:<8} {:<12} {:<12} {:>6} {:>13}",
        "release", "outcome", "caught in", "took", "users served"
    );
    for release in releases {
        let caught = match release.outcome {
            crate::model::Outcome::RolledBack => release.caught_in().map_or("-".into(), |phase| phase.to_string()),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "  {:<8} {:<12} {:<12} {:>5.0}s {:>13}",
            release.revision,
            outcome_word(release.outcome),
            caught,
            release.took.as_secs_f64(),
            release.users_served
        );
    }
    let _ = writeln!(out, "  users sent {} requests through the proxy:", total.sent);
    for revision in &total.revisions {
        let _ = writeln!(
            out,
            "    {:<4} answered {:>6}, of which {:>4} failed (5xx) and {:>3} never answered",
            revision.revision, revision.requests, revision.server_errors, revision.transport_errors
        );
    }
    if total.dropped > 0 {
        let _ = writeln!(out, "  {} requests were not sent: too many in flight", total.dropped);
    }
    out
}

#[cfg(test)]
mod tests {
    use sluice_shadow::{Example, FieldDiff};

    use super::*;

    fn field(name: &str, candidate_rate: f64, noise_rate: f64, real: bool) -> FieldDiff {
        FieldDiff {
            field: name.into(),
            candidate_rate,
            noise_rate,
            real,
            examples: vec![Example {
                request: "GET /api/items/7".into(),
                primary: "12.34".into(),
                candidate: "12.96".into(),
            }],
        }
    }

    #[test]
    fn the_shadow_report_tells_noise_from_real_differences() {
        let report = DiffReport {
            compared: 200,
            with_real_difference: 200,
            diff_rate: 100.0,
            fields: vec![
                field("$.price", 100.0, 0.0, true),
                field("$.requestId", 100.0, 100.0, false),
                field("$.servedAt", 100.0, 100.0, false),
            ],
            ..DiffReport::default()
        };
        let text = shadow_report(&report, "v2", "v4");
        assert!(
            text.contains("200 requests compared, 200 with a real difference"),
            "{text}"
        );
        assert!(text.contains("v4 vs v2") && text.contains("v2 vs v2"), "{text}");
        let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap_or_default().to_owned();
        assert!(line("$.price").ends_with("REAL difference"), "{text}");
        assert!(line("$.requestId").ends_with("noise, cancelled"), "{text}");
        assert!(text.contains("e.g. GET /api/items/7: v2 12.34, v4 12.96"), "{text}");
        assert_eq!(
            text.matches("e.g.").count(),
            1,
            "examples only for real differences: {text}"
        );
    }

    #[test]
    fn the_intro_names_every_stage_and_says_posts_are_not_copied() {
        let text = intro(200.0, Duration::from_secs(5));
        for needle in [
            "1. isolation",
            "2. shadow",
            "3. canary",
            "POSTs are never copied",
            "5%, 10%, 25%, 50%",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }
}
