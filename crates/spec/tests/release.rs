//! The release path's fields: the examples users copy parse, and mistakes in them are reported at their paths.

use sluice_spec::{AlertProvider, Strategy, WebhookKind, parse};

const STAGED: &str = include_str!("../../../examples/canary-with-stages.yaml");
const BLUE_GREEN: &str = include_str!("../../../examples/blue-green.yaml");
const AB_TEST: &str = include_str!("../../../examples/ab-test.yaml");

fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    }
}

#[test]
fn the_examples_parse_with_every_setting_kept() {
    let staged = parse(STAGED).unwrap();
    let isolation = staged.spec.stages.isolation.as_ref().unwrap();
    assert_eq!(isolation.smoke.len(), 2);
    assert_eq!(isolation.smoke[1].expect_body.as_deref(), Some("\"price\""));
    let load = isolation.load_test.as_ref().unwrap();
    assert_eq!((load.rate, load.slo.success_rate), (50, 99.9));
    let shadow = staged.spec.stages.shadow.as_ref().unwrap();
    assert_eq!(
        shadow.methods,
        ["GET", "HEAD", "OPTIONS"],
        "idempotent methods by default"
    );
    assert_eq!((shadow.noise.relative, shadow.noise.absolute), (20.0, 0.03));
    let kinds: Vec<WebhookKind> = staged.spec.webhooks.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [WebhookKind::ConfirmPromotion, WebhookKind::PreRollout]);
    assert_eq!(staged.spec.webhooks[1].retries, 0);
    assert_eq!(staged.spec.alerts[0].provider, AlertProvider::Slack);

    let blue_green = parse(BLUE_GREEN).unwrap();
    let Strategy::BlueGreen(settings) = &blue_green.spec.strategy else {
        panic!("a blue/green strategy")
    };
    assert_eq!(settings.preview_listen, Some("127.0.0.1:8081".parse().unwrap()));
    assert_eq!(settings.scale_down_delay.0, std::time::Duration::from_secs(60));
    assert!(!settings.pre_promotion.is_empty());

    let ab = parse(AB_TEST).unwrap();
    let Strategy::AbTest(settings) = &ab.spec.strategy else {
        panic!("an A/B strategy")
    };
    assert_eq!((settings.matches.len(), settings.iterations), (2, 10));
}

#[test]
fn mistakes_in_the_release_fields_are_each_reported_at_their_path() {
    let broken = AB_TEST
        .replace("\"^(insiders|staff)$\"", "\"^(insiders\"")
        .replace("- headers: { x-beta: { exact: \"yes\" } }", "- headers: {}")
        .replace(
            "{ env: DISCORD_WEBHOOK_URL }",
            "{ env: DISCORD_WEBHOOK_URL, file: /etc/discord }",
        );
    let found = errors(&broken);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].starts_with("spec.alerts[0].urlFrom: set exactly one of env or file"),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("spec.strategy.abTest.match[0]: needs at least one header or cookie"))
    );
    assert!(found.iter().any(|e| {
        e.starts_with("spec.strategy.abTest.match[1].cookies.group.regex: must be a valid regular expression")
    }));
}

#[test]
fn a_preview_on_the_users_address_and_unknown_ignore_fields_are_refused() {
    let broken = BLUE_GREEN.replace("previewListen: 127.0.0.1:8081", "previewListen: 127.0.0.1:8080");
    assert_eq!(
        errors(&broken),
        [
            "spec.strategy.blueGreen.previewListen: must differ from spec.listen (127.0.0.1:8080): users would reach the preview"
        ]
    );
    let broken = STAGED.replace("ignore: [$.servedAt, $.requestId]", "ignore: [servedAt]");
    assert_eq!(
        errors(&broken),
        [
            "spec.stages.shadow.ignore[0]: expected a JSON path into the body ($.field) or headers.<name>, got \"servedAt\""
        ]
    );
}

#[test]
fn webhook_names_are_unique_and_their_durations_checked() {
    let broken = STAGED
        .replace("name: integration", "name: approve")
        .replace("timeout: 2m", "timeout: 0s")
        .replace("duration: 1m", "duration: 5 parsecs");
    let found = errors(&broken);
    assert!(
        found.contains(
            &"spec.webhooks[1].name: must be unique among the webhooks, \"approve\" is used twice".to_owned()
        ),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.starts_with("spec.webhooks[1].timeout: must be greater than 0")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|e| e.starts_with("spec.stages.shadow.duration:")),
        "{found:#?}"
    );
}
