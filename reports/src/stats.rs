//! Statistics across seeds: mean, standard deviation and the 95 % confidence half-width of the
//! mean (Student's t).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Summary of one quantity over seeds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Number of seeds with a value.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub sd: f64,
    /// Half-width of the 95 % confidence interval of the mean (0 for one seed).
    pub ci95: f64,
}

/// Summarises the present values; `None` if there are none.
pub fn summarize(values: impl IntoIterator<Item = Option<f64>>) -> Option<Summary> {
    let xs: Vec<f64> = values.into_iter().flatten().collect();
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(Summary {
            n,
            mean,
            sd: 0.0,
            ci95: 0.0,
        });
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = var.sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).map_or(1.96, |d| d.inverse_cdf(0.975));
    Some(Summary {
        n,
        mean,
        sd,
        ci95: t * sd / (n as f64).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_and_t_interval() {
        let s = summarize([Some(1.0), None, Some(2.0), Some(3.0)]).unwrap();
        assert_eq!(s.n, 3);
        assert!((s.mean - 2.0).abs() < 1e-12);
        assert!((s.sd - 1.0).abs() < 1e-12);
        // t(0.975, 2) = 4.3027
        assert!(
            (s.ci95 - 4.302_652_7 / 3f64.sqrt()).abs() < 1e-5,
            "{}",
            s.ci95
        );
        assert_eq!(summarize([None]), None);
    }
}
