//! `/metrics`: the same measurements as `/snapshot`, in Prometheus text format.
//!
//! A collector reads the stats at scrape time instead of the hot path updating a second set of
//! Prometheus metrics, so both endpoints always agree and each request is recorded once.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::plane::DataPlane;
use crate::snapshot::LATENCY_BOUNDS_MS;
use crate::stats::{Counts, RevisionStats, SideCounts};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Quantiles exported from the exact HDR histograms.
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// A registry whose only collector reads `plane`.
pub(crate) fn registry(plane: Arc<DataPlane>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PlaneCollector { plane }));
    registry
}

struct PlaneCollector {
    plane: Arc<DataPlane>,
}

impl std::fmt::Debug for PlaneCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaneCollector").finish_non_exhaustive()
    }
}

/// What one revision reports, read once per scrape.
struct RevisionReading {
    stats: Arc<RevisionStats>,
    total: Counts,
    routes: Vec<(String, Counts, i64)>,
    mirror: Counts,
    side: SideCounts,
}

impl RevisionReading {
    fn read(stats: Arc<RevisionStats>) -> Self {
        let routes: Vec<(String, Counts, i64)> = stats
            .routes()
            .into_iter()
            .map(|(route, recorder)| (route, recorder.counts(), recorder.in_flight()))
            .collect();
        let mut total = Counts::default();
        for (_, counts, _) in &routes {
            total.add(counts);
        }
        Self {
            mirror: stats.mirror().counts(),
            side: stats.side_counts(),
            total,
            routes,
            stats,
        }
    }

    fn labels(&self) -> [(&'static str, &str); 2] {
        [("service", self.stats.service()), ("revision", self.stats.revision())]
    }
}

fn bounds_seconds() -> Vec<f64> {
    LATENCY_BOUNDS_MS
        .iter()
        .map(|ms| ms / 1000.0)
        .chain([f64::INFINITY])
        .collect()
}

fn encode_histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Vec<(&str, &str)>, Counts)],
) -> Result<(), std::fmt::Error> {
    let bounds = bounds_seconds();
    let mut family = encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, counts) in series {
        let buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(counts.buckets).collect();
        family.encode_family(labels)?.encode_histogram::<NoLabelSet>(
            counts.latency_sum_us as f64 / 1_000_000.0,
            counts.total(),
            &buckets,
            None,
        )?;
    }
    Ok(())
}

fn encode_counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: &[(Vec<(&str, &str)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in series {
        family
            .encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(value, None)?;
    }
    Ok(())
}

fn encode_gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: &[(Vec<(&str, &str)>, f64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        family.encode_family(labels)?.encode_gauge(value)?;
    }
    Ok(())
}

impl Collector for PlaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let readings: Vec<RevisionReading> = self.plane.stats.all().into_iter().map(RevisionReading::read).collect();

        let mut requests = Vec::new();
        let mut route_requests = Vec::new();
        let mut durations = Vec::new();
        let mut route_durations = Vec::new();
        let mut quantiles = Vec::new();
        let mut in_flight = Vec::new();
        let mut received = Vec::new();
        let mut sent = Vec::new();
        let mut grpc = Vec::new();
        let mut connect_failures = Vec::new();
        let mut upgrades = Vec::new();
        let mut mirror_requests = Vec::new();
        let mut mirror_durations = Vec::new();
        let mut mirror_not_sent = Vec::new();
        let codes: Vec<String> = (0..crate::stats::GRPC_CODES).map(|c| c.to_string()).collect();
        let quantile_names: Vec<String> = QUANTILES.iter().map(f64::to_string).collect();
        let hdr_quantiles: Vec<Vec<(f64, f64)>> = readings.iter().map(|r| r.stats.quantiles(&QUANTILES)).collect();
        for (reading, reading_quantiles) in readings.iter().zip(&hdr_quantiles) {
            let labels = reading.labels();
            for (class, count) in CLASSES.iter().zip(reading.total.by_class) {
                requests.push(([&labels[..], &[("class", *class)]].concat(), count));
            }
            durations.push((labels.to_vec(), reading.total));
            for ((_, value), name) in reading_quantiles.iter().zip(&quantile_names) {
                quantiles.push(([&labels[..], &[("quantile", name.as_str())]].concat(), *value));
            }
            for (route, counts, flying) in &reading.routes {
                let route_labels = [&labels[..], &[("route", route.as_str())]].concat();
                for (class, count) in CLASSES.iter().zip(counts.by_class) {
                    route_requests.push(([&route_labels[..], &[("class", *class)]].concat(), count));
                }
                route_durations.push((route_labels.clone(), *counts));
                in_flight.push((route_labels.clone(), *flying as f64));
                received.push((route_labels.clone(), counts.bytes_received));
                sent.push((route_labels.clone(), counts.bytes_sent));
                for (code, count) in codes.iter().zip(counts.grpc) {
                    if count > 0 {
                        grpc.push(([&route_labels[..], &[("grpc_status", code.as_str())]].concat(), count));
                    }
                }
            }
            connect_failures.push((labels.to_vec(), reading.side.connect_failures));
            upgrades.push((labels.to_vec(), reading.side.upgrades));
            for (class, count) in CLASSES.iter().zip(reading.mirror.by_class) {
                mirror_requests.push(([&labels[..], &[("class", *class)]].concat(), count));
            }
            mirror_durations.push((labels.to_vec(), reading.mirror));
            mirror_not_sent.push((
                [&labels[..], &[("reason", "full")]].concat(),
                reading.side.mirror_dropped,
            ));
            mirror_not_sent.push((
                [&labels[..], &[("reason", "body_too_large")]].concat(),
                reading.side.mirror_skipped,
            ));
        }

        encode_counters(
            &mut encoder,
            "sluice_proxy_requests",
            "Responses per service, revision and status class, since the proxy started.",
            None,
            &requests,
        )?;
        encode_histogram(
            &mut encoder,
            "sluice_proxy_request_duration",
            "Time from receiving a request to sending the response headers, per service and revision.",
            &durations,
        )?;
        encode_gauges(
            &mut encoder,
            "sluice_proxy_request_duration_quantile",
            "Exact quantiles (HDR histogram) of the request duration since the proxy started.",
            Some(&Unit::Seconds),
            &quantiles,
        )?;
        encode_counters(
            &mut encoder,
            "sluice_proxy_route_requests",
            "Responses per service, revision, route and status class.",
            None,
            &route_requests,
        )?;
        encode_histogram(
            &mut encoder,
            "sluice_proxy_route_request_duration",
            "Time to the response headers per service, revision and route.",
            &route_durations,
        )?;
        encode_gauges(
            &mut encoder,
            "sluice_proxy_in_flight_requests",
            "Requests received and not yet answered in full.",
            None,
            &in_flight,
        )?;
        encode_counters(
            &mut encoder,
            "sluice_proxy_received",
            "Request body bytes received from clients.",
            Some(&Unit::Bytes),
            &received,
        )?;
        encode_counters(
            &mut encoder,
            "sluice_proxy_sent",
            "Response body bytes sent to clients.",
            Some(&Unit::Bytes),
            &sent,
        )?;
        encode_counters(
            &mut encoder,
            "sluice_proxy_grpc_responses",
            "gRPC answers per grpc-status code (from trailers); codes never seen are absent.",
            None,
            &grpc,
        )?;
        encode_counters(
            &mut encoder,
            "sluice_proxy_connect_failures",
            "Failed connections to instances (the instance is ejected; the request tries another one).",
            None,
            &connect_failures,
        )?;
        encode_counters(
            &mut encoder,
            "sluice_proxy_upgrades",
            "Connections upgraded (WebSocket) and tunnelled.",
            None,
            &upgrades,
        )?;
        encode_counters(
            &mut encoder,
            "sluice_proxy_mirror_requests",
            "Answers to mirrored copies per status class (a copy without an answer is a 5xx).",
            None,
            &mirror_requests,
        )?;
        encode_histogram(
            &mut encoder,
            "sluice_proxy_mirror_request_duration",
            "Time to the response headers of mirrored copies.",
            &mirror_durations,
        )?;
        encode_counters(
            &mut encoder,
            "sluice_proxy_mirror_not_sent",
            "Copies not sent: `full` when maxInFlight copies were in flight, `body_too_large` over maxBodyBytes.",
            None,
            &mirror_not_sent,
        )?;

        let version = ConstGauge::new(i64::try_from(self.plane.table.load().version()).unwrap_or(i64::MAX));
        let gauge = encoder.encode_descriptor(
            "sluice_proxy_routes_version",
            "Version of the route table in effect.",
            None,
            version.metric_type(),
        )?;
        version.encode(gauge)
    }
}
