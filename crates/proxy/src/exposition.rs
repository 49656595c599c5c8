//! `/metrics`: the same per-revision measurements as `/snapshot`, in Prometheus text format.
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

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

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

impl Collector for PlaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let revisions: Vec<_> = self
            .plane
            .stats
            .all()
            .into_iter()
            .map(|stats| (stats.clone(), stats.counts()))
            .collect();

        let mut requests = encoder.encode_descriptor(
            "sluice_proxy_requests",
            "Responses per service, revision and status class, since the proxy started.",
            None,
            MetricType::Counter,
        )?;
        for (stats, counts) in &revisions {
            for (class, count) in CLASSES.iter().zip(counts.by_class) {
                let labels = [
                    ("service", stats.service()),
                    ("revision", stats.revision()),
                    ("class", class),
                ];
                requests
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }

        let bounds: Vec<f64> = LATENCY_BOUNDS_MS
            .iter()
            .map(|ms| ms / 1000.0)
            .chain([f64::INFINITY])
            .collect();
        let mut durations = encoder.encode_descriptor(
            "sluice_proxy_request_duration",
            "Time from receiving a request to sending the response headers, per service and revision.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (stats, counts) in &revisions {
            let labels = [("service", stats.service()), ("revision", stats.revision())];
            let buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(counts.buckets).collect();
            durations.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                counts.latency_sum_us as f64 / 1_000_000.0,
                counts.by_class.iter().sum(),
                &buckets,
                None,
            )?;
        }

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
