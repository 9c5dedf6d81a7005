//! Runs grouped into points of the law: per state size, T_forget from the verdicts at each
//! training length, and T_recall from the longest-trained run's passkey summary.
//!
//! The points of one mixer's runs: the caller splits an experiment by mixer first (two
//! architectures at one N_S are two points, not one).
//!
//! A grid of lengths only brackets T_forget and a passkey list only bounds T_recall, so each
//! point says which it is (exact, upper or lower bound) and why, in words the report keeps.

use std::collections::BTreeMap;

use forgetlab_runs::config::MixerKind;
use forgetlab_runs::results::{Censoring, Estimate, ForgetPoint, RecallPoint, Retrieval};

use super::{SCALARS_PER_M, format_len};

/// What the law needs from one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub run: String,
    /// The recurrent mixer (runs of different mixers are never one law).
    pub mixer: MixerKind,
    /// N_S in scalars (SSM states plus convolution caches).
    pub state_size: u64,
    /// The SSM-state part of N_S.
    pub ssm_state_size: u64,
    /// Training length T_train.
    pub seq_len: usize,
    /// Whether `eval/verdict.json` exists.
    pub has_verdict: bool,
    /// The verdict's decision (`None`: undetermined or not evaluated).
    pub forgets: Option<bool>,
    /// Whether a passkey summary exists.
    pub has_passkey: bool,
    /// T_recall from the passkey summary.
    pub t_recall: Option<usize>,
    /// Passkey lengths scored in full (the ones T_recall is read from), ascending.
    pub passkey_lengths: Vec<usize>,
    /// Whether the run was trained on synthetic passkey sequences.
    pub passkey_trained: bool,
}

/// T_forget of one state size from its runs (all with this state size).
pub fn forget_point(state_size: u64, runs: &[&RunOutcome]) -> ForgetPoint {
    let mut by_len: BTreeMap<usize, Vec<&RunOutcome>> = BTreeMap::new();
    for r in runs {
        by_len.entry(r.seq_len).or_default().push(r);
    }
    let mut notes = Vec::new();
    let mut lengths = Vec::new();
    let mut verdicts = Vec::new();
    for (&len, group) in &by_len {
        let yes = group.iter().filter(|r| r.forgets == Some(true)).count();
        let no = group.iter().filter(|r| r.forgets == Some(false)).count();
        let verdict = if yes > no {
            Some(true)
        } else if no > yes {
            Some(false)
        } else {
            None
        };
        if yes > 0 && no > 0 {
            notes.push(format!(
                "runs at {} disagree ({yes} forget, {no} do not){}",
                format_len(len),
                if verdict.is_none() {
                    "; treated as undetermined"
                } else {
                    "; majority used"
                }
            ));
        }
        if verdict.is_none() && yes + no == 0 {
            let missing = group.iter().filter(|r| !r.has_verdict).count();
            notes.push(if missing == group.len() {
                format!("{} not evaluated", format_len(len))
            } else {
                format!("{} undetermined", format_len(len))
            });
        }
        lengths.push(len);
        verdicts.push(verdict);
    }
    let pattern: String = lengths
        .iter()
        .zip(&verdicts)
        .map(|(l, v)| {
            let mark = match v {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "?",
            };
            format!("{}{mark}", format_len(*l))
        })
        .collect::<Vec<_>>()
        .join(" ");

    let first_forget = verdicts.iter().position(|v| *v == Some(true));
    let t_forget = first_forget.map(|i| lengths[i]);
    let mut bracketed = false;
    match first_forget {
        None if verdicts.iter().all(Option::is_none) => {
            notes.insert(0, "no determined verdict".to_string());
        }
        None => {
            // Only a determined "does not forget" bounds T_forget from below.
            let longest_fail = verdicts
                .iter()
                .rposition(|v| *v == Some(false))
                .map_or(0, |j| lengths[j]);
            notes.insert(
                0,
                format!(
                    "no run forgets up to {}: T_forget > {} (lower bound only); train longer \
                     to bracket it",
                    format_len(longest_fail),
                    format_len(longest_fail)
                ),
            )
        }
        Some(i) => {
            let last_fail = verdicts[..i].iter().rposition(|v| *v == Some(false));
            match last_fail {
                Some(j) => {
                    bracketed = true;
                    notes.insert(
                        0,
                        format!(
                            "T_forget in ({}, {}]",
                            format_len(lengths[j]),
                            format_len(lengths[i])
                        ),
                    );
                }
                None => notes.insert(
                    0,
                    format!(
                        "already forgets at the shortest determined length {}: T_forget <= {} \
                         (upper bound only); train shorter to bracket it",
                        format_len(lengths[i]),
                        format_len(lengths[i])
                    ),
                ),
            }
            let later_fail: Vec<String> = lengths[i + 1..]
                .iter()
                .zip(&verdicts[i + 1..])
                .filter(|(_, v)| **v == Some(false))
                .map(|(l, _)| format_len(*l))
                .collect();
            if !later_fail.is_empty() {
                notes.push(format!(
                    "inconsistent pattern: longer runs fail to forget at {} although {} forgets; \
                     check seeds and training budgets",
                    later_fail.join(", "),
                    format_len(lengths[i])
                ));
            }
        }
    }
    let mut ssm: Vec<u64> = runs.iter().map(|r| r.ssm_state_size).collect();
    ssm.sort_unstable();
    ssm.dedup();
    if ssm.len() > 1 {
        notes.push(format!(
            "runs of this N_S differ in their SSM part ({}); the smallest is used",
            ssm.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let estimate = ForgetPoint::implied_estimate(&lengths, &verdicts, t_forget, bracketed);
    ForgetPoint {
        mixer: None,
        state_size,
        ssm_state_size: ssm.first().copied(),
        lengths,
        verdicts,
        t_forget,
        bracketed,
        estimate,
        note: format!("{pattern}: {}", notes.join("; ")),
    }
}

/// T_recall of one state size, from its longest-trained run (one with a passkey summary when
/// there is one).
pub fn recall_point(
    state_size: u64,
    runs: &[&RunOutcome],
    notes: &mut Vec<String>,
) -> Option<RecallPoint> {
    let longest = runs.iter().map(|r| r.seq_len).max()?;
    let mut candidates: Vec<&&RunOutcome> = runs.iter().filter(|r| r.seq_len == longest).collect();
    candidates.sort_by(|a, b| (!a.has_passkey, &a.run).cmp(&(!b.has_passkey, &b.run)));
    let best = candidates.first()?;
    let at = format!("N_S = {:.3}M", state_size as f64 / SCALARS_PER_M);
    let estimate = if !best.has_passkey {
        notes.push(format!(
            "{at}: passkey not run on {} (no passkey summary), no T_recall",
            best.run
        ));
        None
    } else {
        let shortest = best.passkey_lengths.first().copied();
        let longest_tried = best.passkey_lengths.last().copied();
        match best.t_recall {
            Some(tokens) if Some(tokens) == longest_tried => {
                notes.push(format!(
                    "{at}: {} passes at the longest passkey length tried, so T_recall >= {} \
                     (lower bound only); try longer lengths to measure it",
                    best.run,
                    format_len(tokens)
                ));
                Some(Estimate {
                    tokens,
                    kind: Censoring::LowerBound,
                })
            }
            Some(tokens) => Some(Estimate {
                tokens,
                kind: Censoring::Exact,
            }),
            None => {
                notes.push(format!(
                    "{at}: passkey ran on {} but no length reached the accuracy threshold{}",
                    best.run,
                    shortest.map_or(String::new(), |s| format!(
                        ", so T_recall < {} (upper bound only)",
                        format_len(s)
                    ))
                ));
                shortest.map(|tokens| Estimate {
                    tokens,
                    kind: Censoring::UpperBound,
                })
            }
        }
    };
    Some(RecallPoint {
        mixer: None,
        state_size,
        ssm_state_size: Some(best.ssm_state_size),
        run: best.run.clone(),
        t_recall: best.t_recall,
        passkey_ran: Some(best.has_passkey),
        lengths: best.passkey_lengths.clone(),
        estimate,
        retrieval: if best.passkey_trained {
            Retrieval::InDistribution
        } else {
            Retrieval::ZeroShot
        },
    })
}
