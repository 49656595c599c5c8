//! Turning Prometheus answers into a window: coverage from raw samples, counts and latency buckets.

use std::time::Duration;

use jiff::Timestamp;
use sluice_analysis::stats::Histogram;

use super::response::{QueryResult, Series, VectorSample};
use crate::MetricsError;

/// How well one revision's raw samples cover a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Coverage {
    /// The newest sample: the window's counts are taken at this instant so nothing is extrapolated past it.
    pub last: Timestamp,
    /// Whether the first sample is close to the window's start, the last close to `now`, and no gap between
    /// samples is longer than the tolerated one.
    pub complete: bool,
}

/// The coverage of `(since, now]` by the samples of every series (scraped together, so their times are
/// merged); `None` when there is no sample at all.
pub(crate) fn coverage(series: &[Series], since: Timestamp, now: Timestamp, max_gap: Duration) -> Option<Coverage> {
    let mut times: Vec<Timestamp> = series
        .iter()
        .flat_map(|s| s.samples.iter().map(|sample| sample.at))
        .collect();
    times.sort();
    times.dedup();
    let (&first, &last) = (times.first()?, times.last()?);
    let within = |from: Timestamp, to: Timestamp| to.duration_since(from).unsigned_abs().le(&max_gap);
    let complete = within(since, first) && within(last, now) && times.windows(2).all(|pair| within(pair[0], pair[1]));
    Some(Coverage { last, complete })
}

/// The one value of an answer: a scalar, or a vector with one series. No series is an empty result, several
/// are ambiguous, NaN is no number: each an error, never a zero.
pub(crate) fn single_value(result: QueryResult, what: &str) -> Result<f64, MetricsError> {
    let value = match result {
        QueryResult::Scalar(sample) => sample.value,
        QueryResult::Vector(samples) => match samples.as_slice() {
            [] => {
                return Err(MetricsError::Empty {
                    what: what.to_owned(),
                    detail: String::new(),
                });
            }
            [only] => only.sample.value,
            several => {
                return Err(MetricsError::Ambiguous {
                    what: what.to_owned(),
                    series: several.len(),
                });
            }
        },
        QueryResult::Matrix(_) => {
            return Err(MetricsError::Parse {
                what: what.to_owned(),
                detail: "a range vector; expected a scalar or an instant vector".into(),
            });
        }
    };
    if value.is_nan() {
        return Err(MetricsError::NotANumber { what: what.to_owned() });
    }
    Ok(value)
}

/// A count from an `increase()`: Prometheus' extrapolation makes it fractional, and a count is whole.
pub(crate) fn count(value: f64, what: &str) -> Result<u64, MetricsError> {
    if !value.is_finite() {
        return Err(MetricsError::Parse {
            what: what.to_owned(),
            detail: format!("{value} is not a count"),
        });
    }
    // `as` saturates: a negative count (which increase() never gives) becomes 0.
    Ok(value.round() as u64)
}

/// The latency histogram from an instant vector of cumulative bucket counts, one series per `le` (in seconds,
/// `+Inf` included), as `sum by (le) (increase(…_bucket[…]))` gives.
pub(crate) fn histogram(buckets: &[VectorSample], what: &str) -> Result<Histogram, MetricsError> {
    let invalid = |detail: String| MetricsError::Parse {
        what: what.to_owned(),
        detail,
    };
    if buckets.is_empty() {
        return Err(MetricsError::Empty {
            what: what.to_owned(),
            detail: "; expected one series per `le` bucket".into(),
        });
    }
    let mut cumulative = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        let le = bucket
            .labels
            .get("le")
            .ok_or_else(|| invalid("a series without an `le` label; aggregate with `sum by (le)`".into()))?;
        let le_seconds: f64 = le
            .parse()
            .map_err(|_| invalid(format!("`le` {le:?} is not a number")))?;
        cumulative.push((le_seconds, count(bucket.sample.value, what)?));
    }
    cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    if cumulative.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
        return Err(invalid("no `le=\"+Inf\"` bucket; histogram_quantile needs it".into()));
    }
    let mut bounds_ms = Vec::with_capacity(cumulative.len() - 1);
    let mut counts = Vec::with_capacity(cumulative.len());
    let mut below = 0u64;
    for (le_seconds, total) in cumulative {
        if le_seconds.is_finite() {
            // Rounded to a millionth of a millisecond so that 0.0005 s becomes exactly 0.5 ms, the bound a
            // judge names when it counts requests slower than a threshold.
            bounds_ms.push((le_seconds * 1e9).round() / 1e6);
        }
        // Extrapolated buckets can be a rounding unit out of order; a cumulative count never decreases.
        let total = total.max(below);
        counts.push(total - below);
        below = total;
    }
    Histogram::from_counts(bounds_ms, counts).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::response::Sample;
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn series(times: &[i64]) -> Series {
        Series {
            labels: BTreeMap::new(),
            samples: times.iter().map(|&t| Sample { at: at(t), value: 0.0 }).collect(),
        }
    }

    fn bucket(le: &str, value: f64) -> VectorSample {
        VectorSample {
            labels: BTreeMap::from([("le".to_owned(), le.to_owned())]),
            sample: Sample { at: at(0), value },
        }
    }

    const GAP: Duration = Duration::from_secs(3);

    #[test]
    fn samples_every_scrape_cover_the_window() {
        let covered = coverage(&[series(&[101, 102, 104, 106])], at(100), at(107), GAP).unwrap();
        assert_eq!(
            covered,
            Coverage {
                last: at(106),
                complete: true
            }
        );
    }

    #[test]
    fn a_series_that_starts_late_a_gap_or_a_stale_end_is_incomplete() {
        // First sample long after the start (the series did not exist, or Prometheus was not scraping).
        assert!(
            !coverage(&[series(&[110, 111])], at(100), at(111), GAP)
                .unwrap()
                .complete
        );
        // A gap in the middle (missed scrapes).
        assert!(
            !coverage(&[series(&[101, 102, 108, 109])], at(100), at(109), GAP)
                .unwrap()
                .complete
        );
        // The last sample is old (Prometheus stopped scraping).
        assert!(
            !coverage(&[series(&[101, 102])], at(100), at(110), GAP)
                .unwrap()
                .complete
        );
    }

    #[test]
    fn samples_of_several_series_are_merged() {
        let covered = coverage(&[series(&[101, 105]), series(&[103, 107])], at(100), at(108), GAP).unwrap();
        assert_eq!(
            covered,
            Coverage {
                last: at(107),
                complete: true
            }
        );
    }

    #[test]
    fn no_sample_is_no_coverage() {
        assert_eq!(coverage(&[], at(100), at(110), GAP), None);
        assert_eq!(coverage(&[series(&[])], at(100), at(110), GAP), None);
    }

    #[test]
    fn a_single_value_is_a_scalar_or_a_one_series_vector() {
        let scalar = QueryResult::Scalar(Sample { at: at(0), value: 2.5 });
        assert_eq!(single_value(scalar, "q").unwrap(), 2.5);
        let vector = QueryResult::Vector(vec![bucket("1", 7.0)]);
        assert_eq!(single_value(vector, "q").unwrap(), 7.0);
    }

    #[test]
    fn no_series_several_series_nan_or_a_matrix_are_errors() {
        let cases = [
            (QueryResult::Vector(vec![]), "metrics: q returned an empty result"),
            (
                QueryResult::Vector(vec![bucket("1", 1.0), bucket("2", 2.0)]),
                "metrics: q returned 2 series; expected one (aggregate it, e.g. with sum())",
            ),
            (
                QueryResult::Vector(vec![bucket("1", f64::NAN)]),
                "metrics: q returned NaN",
            ),
            (
                QueryResult::Matrix(vec![]),
                "metrics: cannot parse the answer to q: a range vector; expected a scalar or an instant vector",
            ),
        ];
        for (result, message) in cases {
            assert_eq!(single_value(result, "q").unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn counts_round_extrapolated_increases() {
        assert_eq!(count(269.6, "q").unwrap(), 270);
        assert_eq!(count(0.0, "q").unwrap(), 0);
        assert!(count(f64::INFINITY, "q").is_err());
    }

    #[test]
    fn buckets_become_a_histogram_in_milliseconds() {
        // Out of order, as Prometheus may answer; cumulative counts.
        let buckets = [
            bucket("+Inf", 10.0),
            bucket("0.0005", 1.0),
            bucket("0.1", 9.4),
            bucket("0.0025", 4.0),
        ];
        let histogram = histogram(&buckets, "q").unwrap();
        assert_eq!(histogram.bounds(), &[0.5, 2.5, 100.0]);
        assert_eq!(histogram.counts(), &[1, 3, 5, 1]);
        // histogram_quantile(0.5): rank 5 lies in (2.5, 100] ms, 1 of its 5 requests in.
        assert_eq!(histogram.quantile(0.5), Some(2.5 + 97.5 * 1.0 / 5.0));
        assert_eq!(histogram.count_above(2.5), Ok(6));
    }

    #[test]
    fn every_proxy_bound_converts_exactly() {
        let buckets: Vec<_> = sluice_proxy::LATENCY_BOUNDS_MS
            .iter()
            .map(|ms| bucket(&(ms / 1000.0).to_string(), 0.0))
            .chain([bucket("+Inf", 0.0)])
            .collect();
        let histogram = histogram(&buckets, "q").unwrap();
        assert_eq!(histogram.bounds(), &sluice_proxy::LATENCY_BOUNDS_MS);
        assert_eq!(histogram.quantile(0.99), None);
    }

    #[test]
    fn an_out_of_order_cumulative_count_does_not_underflow() {
        let histogram = histogram(&[bucket("0.1", 5.0), bucket("+Inf", 4.6)], "q").unwrap();
        assert_eq!(histogram.counts(), &[5, 0]);
    }

    #[test]
    fn malformed_buckets_are_named() {
        let no_le = VectorSample {
            labels: BTreeMap::new(),
            sample: Sample { at: at(0), value: 1.0 },
        };
        let cases = [
            (vec![], "returned an empty result; expected one series per `le` bucket"),
            (vec![no_le], "a series without an `le` label"),
            (vec![bucket("fast", 1.0)], "`le` \"fast\" is not a number"),
            (vec![bucket("0.1", 1.0)], "no `le=\"+Inf\"` bucket"),
            (vec![bucket("+Inf", 1.0)], "histogram bounds are empty"),
        ];
        for (buckets, message) in cases {
            let error = histogram(&buckets, "q").unwrap_err().to_string();
            assert!(error.contains(message), "{error}");
        }
    }
}
