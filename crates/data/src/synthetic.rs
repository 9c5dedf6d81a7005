//! Synthetic text: the paper's long prompts for evaluation, and long-memory training tasks.
//!
//! **Prompts** (paper.md section 2): `newlines` is `"\n"` repeated; `capital` is "The capital
//! of China is Beijing. The capital of USA is Washington. The capital of Norway is Oslo. "
//! repeated. Both are tokenized as a long chunk whose tokens are tiled to the requested length.
//!
//! **Tasks** for training, generated on the fly from the stream's seeded RNG, each exactly
//! seq_len + 1 tokens, so small CPU models get a reason to remember far back:
//!
//! - `passkey`: filler sentences (drawn from a small set, so they are cheap to predict), a
//!   needle "pass key 12345." at a random depth, and at the very end "pass key? 12345"; the final
//!   digits can only be predicted from the needle. Compact, so it fits even 16-token windows.
//! - `associative-recall`: key-value pairs "KEY=17;" at the start, filler, then "Recall:" and
//!   some of the keys again with their values; each value can only be predicted from the pairs
//!   at the start. `recall_pairs` and `recall_queries` are upper bounds: windows too short for
//!   them get fewer pairs, and the numbers used are logged; a task that does not fit at all
//!   (associative recall below about 20 tokens) is left out with a warning.

use forgetlab_runs::config::{SyntheticConfig, SyntheticPrompt, SyntheticTask};

use crate::error::DataError;
use crate::rng::SplitMix64;
use crate::tokenizer::Tokenizer;

const CAPITAL: &str = "The capital of China is Beijing. The capital of USA is Washington. The capital of Norway is Oslo. ";

const FILLERS: [&str; 8] = [
    "The river runs past the old mill. ",
    "A cat sleeps on the warm stone. ",
    "Rain falls softly on the roof. ",
    "The market opens early in the morning. ",
    "Birds sing in the tall trees. ",
    "The road winds up the green hill. ",
    "Children play in the quiet park. ",
    "The lamp glows in the dark room. ",
];

/// A paper prompt of exactly `len` tokens.
pub fn synthetic_prompt(
    prompt: SyntheticPrompt,
    tok: &Tokenizer,
    len: usize,
) -> Result<Vec<u32>, DataError> {
    let unit = match prompt {
        SyntheticPrompt::Newlines => "\n".repeat(4096),
        SyntheticPrompt::Capital => CAPITAL.repeat(64),
    };
    let chunk = tok.encode(&unit)?;
    if chunk.is_empty() {
        return Err(DataError::Invalid("the prompt tokenizes to nothing".into()));
    }
    Ok(chunk.iter().copied().cycle().take(len).collect())
}

/// Generator of the synthetic training tasks for one run.
#[derive(Debug, Clone)]
pub struct SyntheticTasks {
    tasks: Vec<SyntheticTask>,
    window: usize,
    fillers: Vec<Vec<u32>>,
    pairs: usize,
    queries: usize,
    tokenizer: std::sync::Arc<tokenizers::Tokenizer>,
}

impl SyntheticTasks {
    pub fn new(
        config: &SyntheticConfig,
        tok: &Tokenizer,
        seq_len: usize,
    ) -> Result<Self, DataError> {
        let fillers = FILLERS
            .iter()
            .map(|f| tok.encode(f))
            .collect::<Result<Vec<_>, _>>()?;
        let inner =
            tokenizers::Tokenizer::from_file(tok.path()).map_err(|e| DataError::Tokenizer {
                path: tok.path().to_path_buf(),
                reason: e.to_string(),
            })?;
        let mut tasks = Self {
            tasks: config.tasks.clone(),
            window: seq_len + 1,
            fillers,
            pairs: config.recall_pairs,
            queries: config.recall_queries.min(config.recall_pairs),
            tokenizer: std::sync::Arc::new(inner),
        };
        // Every task must fit the window: shrink the recall task to fit, then check each task
        // with a few draws and a safety margin (digits and keys tokenize to varying lengths).
        let fits = |t: &Self, task: SyntheticTask| {
            let mut rng = SplitMix64::new(0);
            (0..16).all(|_| {
                let (head, tail) = t.parts(task, &mut rng);
                head.len() + tail.len() + 2 <= t.window
            })
        };
        if tasks.tasks.contains(&SyntheticTask::AssociativeRecall) {
            while !fits(&tasks, SyntheticTask::AssociativeRecall) && tasks.pairs > 1 {
                tasks.pairs -= 1;
                tasks.queries = tasks.queries.min(tasks.pairs);
            }
            if (tasks.pairs, tasks.queries)
                != (
                    config.recall_pairs,
                    config.recall_queries.min(config.recall_pairs),
                )
            {
                tracing::info!(
                    "associative recall at length {seq_len}: {} pairs, {} queries (the window is too short for more)",
                    tasks.pairs,
                    tasks.queries
                );
            }
        }
        let (kept, dropped): (Vec<_>, Vec<_>) = tasks.tasks.iter().partition(|t| fits(&tasks, **t));
        if kept.is_empty() {
            return Err(DataError::Invalid(format!(
                "train.seq_len = {seq_len} is too short for any synthetic task in {:?}",
                config.tasks
            )));
        }
        if !dropped.is_empty() {
            tracing::warn!(
                "synthetic tasks {dropped:?} do not fit sequences of {seq_len} tokens; using {kept:?}"
            );
        }
        tasks.tasks = kept;
        Ok(tasks)
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    /// The task's fixed opening and closing tokens; filler goes between them.
    fn parts(&self, task: SyntheticTask, rng: &mut SplitMix64) -> (Vec<u32>, Vec<u32>) {
        match task {
            SyntheticTask::Passkey => {
                let key = format!("{:05}", rng.below(100_000));
                (
                    self.encode(&format!("pass key {key}. ")),
                    self.encode(&format!("pass key? {key}")),
                )
            }
            SyntheticTask::AssociativeRecall => {
                let mut pairs = Vec::with_capacity(self.pairs);
                for _ in 0..self.pairs {
                    let key: String = (0..3)
                        .map(|_| (b'A' + rng.below(26) as u8) as char)
                        .collect();
                    pairs.push((key, rng.below(100)));
                }
                let head: String = pairs.iter().map(|(k, v)| format!("{k}={v:02}; ")).collect();
                let mut tail = String::from("Recall: ");
                for _ in 0..self.queries {
                    let (k, v) = &pairs[rng.below(pairs.len() as u64) as usize];
                    tail.push_str(&format!("{k}={v:02}; "));
                }
                (self.encode(&head), self.encode(tail.trim_end()))
            }
        }
    }

    /// One task sequence of exactly seq_len + 1 tokens.
    pub fn sample(&self, rng: &mut SplitMix64) -> Vec<u32> {
        let task = self.tasks[rng.below(self.tasks.len() as u64) as usize];
        let (needle, tail) = self.parts(task, rng);
        let filler_len = self.window - needle.len() - tail.len();
        let mut filler = Vec::with_capacity(filler_len + 16);
        while filler.len() < filler_len {
            filler.extend(&self.fillers[rng.below(self.fillers.len() as u64) as usize]);
        }
        filler.truncate(filler_len);
        // The passkey needle goes at a random depth of the filler; recall pairs open the sequence.
        let at = match task {
            SyntheticTask::Passkey => rng.below(filler_len as u64 + 1) as usize,
            SyntheticTask::AssociativeRecall => 0,
        };
        let mut out = Vec::with_capacity(self.window);
        out.extend(&filler[..at]);
        out.extend(&needle);
        out.extend(&filler[at..]);
        out.extend(&tail);
        debug_assert_eq!(out.len(), self.window);
        out
    }
}
