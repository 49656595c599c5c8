//! Statistics for the judges: histograms and quantiles, e-processes, Mann–Whitney, anytime-valid bounds.
