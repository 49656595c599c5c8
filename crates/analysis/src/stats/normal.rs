//! The standard normal distribution, the one piece of special-function code the tests below share.

use std::f64::consts::SQRT_2;

use statrs::function::erf::erfc_inv;

/// Φ(z). Written with `erfc` so that the far tails keep their relative precision; libm's (musl's) rather than
/// statrs', which is off by up to ~1e-11 and would show in p-values compared with other implementations.
pub(crate) fn cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / SQRT_2)
}

/// Φ⁻¹(p) for p in (0, 1); ±∞ at the ends. statrs' inverse agrees with Python's `NormalDist` to the last bit.
pub(crate) fn quantile(p: f64) -> f64 {
    -SQRT_2 * erfc_inv(2.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_normal_dist() {
        // Python: statistics.NormalDist().cdf / .inv_cdf
        assert!((cdf(1.0) - 0.8413447460685429).abs() < 1e-15);
        assert!((cdf(-3.0) - 0.0013498980316301035).abs() < 1e-17);
        assert!((quantile(0.01) - -2.3263478740408408).abs() < 1e-12);
        assert!((quantile(0.975) - 1.9599639845400536).abs() < 1e-12);
    }
}
