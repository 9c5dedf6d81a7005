//! Query parameters of the chart and API URLs, parsed strictly: a value the dashboard does not
//! understand is a 400 naming the parameter, never silently replaced by a default.

use std::collections::HashMap;

use axum::extract::Query;
use forgetlab_plot::{PositionQuantity, TrainingChart, TrainingOptions};

use super::problem::Problem;
use crate::charts::PositionQuery;
use crate::root::is_plain_name;

pub(super) type QueryMap = Query<HashMap<String, String>>;

fn flag(q: &HashMap<String, String>, key: &str, default: bool) -> Result<bool, Problem> {
    match q.get(key).map(String::as_str) {
        None | Some("") => Ok(default),
        Some("1" | "true" | "on" | "yes") => Ok(true),
        Some("0" | "false" | "off" | "no") => Ok(false),
        Some(other) => Err(Problem::BadRequest(format!(
            "{key}: expected 1 or 0, got {other:?}"
        ))),
    }
}

pub(super) fn number<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, Problem> {
    match q.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Problem::BadRequest(format!("{key}: not a number: {v:?}"))),
    }
}

/// The `mitigation` label (`none` when absent); a plain name, as it becomes part of a path.
pub(super) fn mitigation(q: &HashMap<String, String>) -> Result<String, Problem> {
    let m = q
        .get("mitigation")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| "none".to_string());
    if is_plain_name(&m) {
        Ok(m)
    } else {
        Err(Problem::BadRequest(format!(
            "mitigation: invalid label {m:?}"
        )))
    }
}

pub(super) fn training_options(
    q: &HashMap<String, String>,
    which: TrainingChart,
) -> Result<TrainingOptions, Problem> {
    let mut opts = TrainingOptions::for_chart(which);
    if let Some(s) = number::<f64>(q, "smooth")? {
        if !(0.0..1.0).contains(&s) {
            return Err(Problem::BadRequest(format!(
                "smooth: must be in [0, 1), got {s}"
            )));
        }
        opts.smoothing = s;
    }
    opts.log_x = flag(q, "logx", opts.log_x)?;
    opts.log_y = flag(q, "logy", opts.log_y)?;
    Ok(opts)
}

pub(super) fn position_query(q: &HashMap<String, String>) -> Result<PositionQuery, Problem> {
    let quantity = match q.get("quantity").map(String::as_str) {
        None | Some("") => PositionQuantity::Loss,
        Some(s) => PositionQuantity::parse(s).ok_or_else(|| {
            Problem::BadRequest(format!("quantity: expected loss or excess, got {s:?}"))
        })?,
    };
    Ok(PositionQuery {
        quantity,
        log_x: flag(q, "logx", false)?,
        mitigation: mitigation(q)?,
        prompt: q.get("prompt").filter(|p| !p.is_empty()).cloned(),
    })
}

pub(super) fn state_size(q: &HashMap<String, String>) -> Result<u64, Problem> {
    number::<u64>(q, "state_size")?
        .ok_or_else(|| Problem::BadRequest("state_size: required (N_S in scalars)".into()))
}
