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
//! - `bindings`: a stream of items filling the whole sequence, each a binding "k12=40;" that
//!   overwrites key 12, or (half the time) a query "k12?40;" for a key among the last
//!   `binding_lag` bindings (any key bound so far when it is 0), answered with its latest
//!   value. What is worth remembering is
//!   always recent, and keys are re-bound again and again, so a state that never forgets
//!   fills with stale bindings of the same keys. The same process, as one long seeded stream
//!   ([`bindings_stream`]), is stationary evaluation text for the forget verdict.

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

/// The `bindings` process: keys re-bound to random two-digit values, and queries for the
/// latest value of a recently bound key.
#[derive(Debug, Clone)]
struct Bindings {
    keys: usize,
    /// Queries ask among the last `lag` bindings; 0 = among every key bound so far.
    lag: usize,
    values: Vec<u8>,
    recent: std::collections::VecDeque<usize>,
    /// Keys bound so far, each once (for `lag = 0`).
    bound: Vec<usize>,
}

impl Bindings {
    fn new(keys: usize, lag: usize) -> Self {
        Self {
            keys,
            lag,
            values: vec![0; keys],
            recent: std::collections::VecDeque::with_capacity(lag),
            bound: Vec::new(),
        }
    }

    /// The next item's text, with its leading space.
    fn next_item(&mut self, rng: &mut SplitMix64) -> String {
        let pool = if self.lag == 0 {
            self.bound.len()
        } else {
            self.recent.len()
        };
        if pool > 0 && rng.below(2) == 0 {
            let pick = rng.below(pool as u64) as usize;
            let key = if self.lag == 0 {
                self.bound[pick]
            } else {
                self.recent[pick]
            };
            return format!(" k{key}?{:02};", self.values[key]);
        }
        let key = rng.below(self.keys as u64) as usize;
        let value = rng.below(100) as u8;
        if self.lag == 0 {
            if !self.bound.contains(&key) {
                self.bound.push(key);
            }
        } else {
            if self.recent.len() == self.lag {
                self.recent.pop_front();
            }
            self.recent.push_back(key);
        }
        self.values[key] = value;
        format!(" k{key}={value:02};")
    }

    /// Items tokenized one by one (so every item always has the same tokens) until `len`
    /// tokens, cut to exactly `len`.
    fn tokens(
        &mut self,
        rng: &mut SplitMix64,
        len: usize,
        mut encode: impl FnMut(&str) -> Vec<u32>,
    ) -> Vec<u32> {
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            out.extend(encode(&self.next_item(rng)));
        }
        out.truncate(len);
        out
    }
}

/// `len` tokens of the `bindings` process with `keys` keys and queries among the last `lag`
/// bindings, seeded by `seed`: evaluation text whose difficulty does not depend on position
/// once a few bindings have been seen.
pub fn bindings_stream(
    tok: &Tokenizer,
    keys: usize,
    lag: usize,
    seed: u64,
    len: usize,
) -> Result<Vec<u32>, DataError> {
    if keys < 2 {
        return Err(DataError::Invalid(format!(
            "the bindings task needs at least 2 keys, got {keys}"
        )));
    }
    let mut rng = SplitMix64::derived(seed, 0xB14D_1465);
    let mut failure = None;
    let tokens = Bindings::new(keys, lag).tokens(&mut rng, len, |item| {
        tok.encode(item).unwrap_or_else(|e| {
            failure.get_or_insert(e);
            vec![0]
        })
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(tokens),
    }
}

/// Generator of the synthetic training tasks for one run.
#[derive(Debug, Clone)]
pub struct SyntheticTasks {
    tasks: Vec<SyntheticTask>,
    window: usize,
    fillers: Vec<Vec<u32>>,
    pairs: usize,
    queries: usize,
    binding_keys: usize,
    binding_lag: usize,
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
            binding_keys: config.binding_keys,
            binding_lag: config.binding_lag,
            tokenizer: std::sync::Arc::new(inner),
        };
        // Every task must fit the window: shrink the recall task to fit, then check each task
        // with a few draws and a safety margin (digits and keys tokenize to varying lengths).
        let fits = |t: &Self, task: SyntheticTask| {
            if task == SyntheticTask::Bindings {
                // Items fill the window and are cut at its end: any length fits.
                return true;
            }
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
            SyntheticTask::Bindings => (Vec::new(), Vec::new()),
        }
    }

    /// One task sequence of exactly seq_len + 1 tokens.
    pub fn sample(&self, rng: &mut SplitMix64) -> Vec<u32> {
        let task = self.tasks[rng.below(self.tasks.len() as u64) as usize];
        if task == SyntheticTask::Bindings {
            return Bindings::new(self.binding_keys, self.binding_lag).tokens(
                rng,
                self.window,
                |item| self.encode(item),
            );
        }
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
            SyntheticTask::AssociativeRecall | SyntheticTask::Bindings => 0,
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
