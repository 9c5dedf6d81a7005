//! The learning rate as a pure function of the step, so resuming needs no scheduler state
//! beyond the step itself.

use forgetlab_runs::config::{OptimConfig, Schedule};

/// Learning rate for optimizer step `step` (1-based) of `total` steps.
///
/// Warmup rises linearly from lr/warmup to lr over `warmup_steps`; then `cosine` decays to
/// `min_lr_ratio * lr` at the last step, `wsd` stays at lr until the last `decay_fraction` of
/// steps and decays linearly to `min_lr_ratio * lr`, `constant` stays at lr.
pub fn learning_rate(optim: &OptimConfig, step: u64, total: u64) -> f64 {
    let peak = optim.lr;
    let floor = optim.min_lr_ratio * peak;
    let warmup = optim.warmup_steps as u64;
    if step <= warmup && warmup > 0 {
        return peak * step as f64 / warmup as f64;
    }
    let after = (step - warmup.min(step)) as f64;
    let span = total.saturating_sub(warmup).max(1) as f64;
    match optim.schedule {
        Schedule::Constant => peak,
        Schedule::Cosine => {
            let progress = (after / span).clamp(0.0, 1.0);
            floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
        }
        Schedule::Wsd => {
            let decay_steps = (optim.decay_fraction * total as f64).round().max(0.0);
            let decay_start = total as f64 - decay_steps;
            if (step as f64) <= decay_start || decay_steps == 0.0 {
                peak
            } else {
                let progress = ((step as f64 - decay_start) / decay_steps).clamp(0.0, 1.0);
                peak + (floor - peak) * progress
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optim(schedule: Schedule) -> OptimConfig {
        OptimConfig {
            lr: 1e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 10,
            schedule,
            decay_fraction: 0.2,
            ..OptimConfig::default()
        }
    }

    #[test]
    fn warmup_then_cosine_reaches_the_floor() {
        let o = optim(Schedule::Cosine);
        assert!((learning_rate(&o, 1, 100) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(&o, 10, 100) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&o, 100, 100) - 1e-4).abs() < 1e-12);
        let mid = learning_rate(&o, 55, 100);
        assert!((mid - 5.5e-4).abs() < 1e-9, "{mid}");
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly() {
        let o = optim(Schedule::Wsd);
        assert_eq!(learning_rate(&o, 50, 100), 1e-3);
        assert_eq!(learning_rate(&o, 80, 100), 1e-3);
        assert!((learning_rate(&o, 90, 100) - 5.5e-4).abs() < 1e-12);
        assert!((learning_rate(&o, 100, 100) - 1e-4).abs() < 1e-12);
        assert_eq!(learning_rate(&optim(Schedule::Constant), 99, 100), 1e-3);
    }
}
