//! How statuses and events read in a terminal.

use std::fmt::Write;

use sluice_engine::Severity;
use sluice_store::StoredEvent;

use crate::model::{Outcome, ServiceStatus, ServiceSummary, StageReport};

/// One event as a log line.
pub fn event_line(event: &StoredEvent) -> String {
    let level = match event.severity {
        Severity::Info => "info ",
        Severity::Warning => "warn ",
        Severity::Error => "ALERT",
    };
    let at = event.at.strftime("%H:%M:%S");
    format!("{at} {level} {}", event.message)
}

/// A word for how a rollout ended.
pub fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Promoted => "promoted",
        Outcome::RolledBack => "rolled back",
        Outcome::Held => "held for a human",
        Outcome::Superseded => "superseded by a newer revision",
    }
}

/// `sluice get`'s table.
pub fn service_table(services: &[ServiceSummary]) -> String {
    let mut out = format!(
        "{:<20} {:<36} {:<12} {:<12} {:>6}\n",
        "SERVICE", "PHASE", "STABLE", "CANDIDATE", "WEIGHT"
    );
    for s in services {
        let _ = writeln!(
            out,
            "{:<20} {:<36} {:<12} {:<12} {:>5}%",
            s.name,
            s.phase,
            s.stable.as_deref().unwrap_or("-"),
            s.candidate.as_deref().unwrap_or("-"),
            s.weight
        );
    }
    out
}

/// `sluice status`'s report.
pub fn status(status: &ServiceStatus) -> String {
    let name = |r: &Option<sluice_spec::RevisionRef>| {
        r.as_ref()
            .map_or("-".to_string(), |r| format!("{} ({})", r.name, r.checksum))
    };
    let mut out = String::new();
    let _ = writeln!(out, "service:   {}", status.name);
    let _ = writeln!(out, "phase:     {}", status.display_phase);
    let _ = writeln!(
        out,
        "stable:    {}  {}%",
        name(&status.stable),
        100 - u32::from(status.weight)
    );
    let _ = writeln!(
        out,
        "candidate: {}  {}% (max {}%)",
        name(&status.candidate),
        status.weight,
        status.max_weight
    );
    let _ = writeln!(out, "failed checks: {}/{}", status.failed_checks, status.threshold);
    if let Some(hold) = &status.hold {
        let _ = writeln!(
            out,
            "held since {} until {}: {}; then {}",
            hold.since,
            hold.until,
            hold_reason(&hold.reason),
            match hold.on_timeout {
                sluice_engine::TimeoutAction::Rollback => "rollback",
            }
        );
    }
    if !status.last_checks.is_empty() {
        let _ = writeln!(out, "last checks:");
        for check in &status.last_checks {
            let value = |v: Option<f64>| v.map_or("no data".to_string(), |v| format!("{v:.2}"));
            let evidence = check.evidence.map_or(String::new(), |e| format!("  evidence {e:.3}"));
            let _ = writeln!(
                out,
                "  {:<22} candidate {} ({} req)  stable {} ({} req){evidence}  limit {}  {}",
                check.metric,
                value(check.candidate),
                check.candidate_requests,
                value(check.stable),
                check.stable_requests,
                check.limit,
                if check.passed { "pass" } else { "FAIL" }
            );
        }
    }
    stage_reports(&mut out, status);
    if !status.instances.is_empty() {
        let _ = writeln!(out, "instances:");
        for i in &status.instances {
            let _ = writeln!(
                out,
                "  {} #{}  {}  pid {}  log {}",
                i.revision,
                i.index,
                i.addr,
                i.pid,
                i.log.display()
            );
        }
    }
    if !status.events.is_empty() {
        let _ = writeln!(out, "recent events:");
        for event in &status.events {
            let _ = writeln!(out, "  {}", event_line(event));
        }
    }
    out
}

/// The stages' reports: what the checks found, and which fields the shadow stage saw differ.
fn stage_reports(out: &mut String, status: &ServiceStatus) {
    let reports = &status.reports;
    for (title, report) in [
        ("isolation", &reports.isolation),
        ("pre-promotion", &reports.pre_promotion),
    ] {
        if let Some(report) = report {
            stage_report(out, title, report);
        }
    }
    let Some(shadow) = &reports.shadow else { return };
    let _ = writeln!(out, "shadow:    {}", shadow.summary());
    for field in shadow.fields.iter().take(10) {
        let _ = writeln!(
            out,
            "  {:<32} candidate {:>6.2}%  stables {:>6.2}%  {}",
            field.field,
            field.candidate_rate,
            field.noise_rate,
            if field.real { "REAL" } else { "noise" }
        );
        if field.real {
            for example in field.examples.iter().take(2) {
                let _ = writeln!(
                    out,
                    "    {}: stable {}  candidate {}",
                    example.request, example.primary, example.candidate
                );
            }
        }
    }
}

fn stage_report(out: &mut String, title: &str, report: &StageReport) {
    if let Some(checks) = &report.checks {
        let _ = writeln!(out, "{title}: {}", checks.summary());
        for smoke in checks.smoke.iter().filter(|s| !s.passed) {
            let _ = writeln!(out, "  {}", smoke.reason);
        }
    }
    for hook in &report.webhooks {
        let verdict = if hook.passed { "pass" } else { "FAIL" };
        let _ = writeln!(out, "{title} webhook {}: {verdict} ({})", hook.hook, hook.detail);
    }
}

/// Why a rollout is held, in words, with what opens it.
fn hold_reason(reason: &sluice_engine::HoldReason) -> String {
    use sluice_engine::HoldReason;
    match reason {
        HoldReason::Operator => "paused by an operator (`sluice resume`)".into(),
        HoldReason::FailedAnalysis { summary } => format!("failed analysis, onFailure: hold ({summary})"),
        HoldReason::Inconclusive { summary } => format!("inconclusive, onInconclusive: hold ({summary})"),
        HoldReason::MetricsUnavailable => "metrics unavailable".into(),
        HoldReason::Gate { kind } => format!("the {kind} gate is closed (its webhooks, or `sluice approve`)"),
    }
}
