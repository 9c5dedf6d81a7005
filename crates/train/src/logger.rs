//! Everything the trainer reports: `metrics.jsonl` (the source of truth), TensorBoard events
//! mirroring it, `status.json`, and a progress bar or plain log lines.

use std::io::IsTerminal;

use forgetlab_runs::{
    MetricKind, MetricRecord, RunDir, RunState, RunStatus, append_json_line, read_metrics,
    write_atomic, write_json_atomic,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::TrainError;
use crate::tensorboard::EventWriter;

pub struct Logger {
    run: RunDir,
    tensorboard: EventWriter,
    progress: Option<ProgressBar>,
    total_steps: u64,
}

impl Logger {
    /// Opens the logs of `run`, first dropping any record logged after `resume_step` (it will be
    /// logged again, so a resumed run's logs equal an uninterrupted run's), and rebuilding the
    /// TensorBoard file from the kept records.
    pub fn open(
        run: &RunDir,
        resume_step: u64,
        total_steps: u64,
        progress: bool,
    ) -> Result<Self, TrainError> {
        let metrics_path = run.metrics();
        let (records, _) = read_metrics(&metrics_path).map_err(TrainError::io(&metrics_path))?;
        let kept: Vec<&MetricRecord> = records.iter().filter(|r| r.step <= resume_step).collect();
        if kept.len() != records.len() || metrics_path.exists() {
            let mut text = Vec::new();
            for r in &kept {
                text.extend(serde_json::to_vec(r).expect("metric records serialise"));
                text.push(b'\n');
            }
            write_atomic(&metrics_path, &text).map_err(TrainError::io(&metrics_path))?;
        }
        let tb_dir = run.tensorboard();
        if tb_dir.exists() {
            std::fs::remove_dir_all(&tb_dir).map_err(TrainError::io(&tb_dir))?;
        }
        let mut tensorboard = EventWriter::create(&tb_dir).map_err(TrainError::io(&tb_dir))?;
        for r in kept {
            write_events(&mut tensorboard, r).map_err(TrainError::io(&tb_dir))?;
        }
        tensorboard.flush().map_err(TrainError::io(&tb_dir))?;
        let progress = (progress && std::io::stdout().is_terminal()).then(|| {
            let bar = ProgressBar::new(total_steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} step {pos}/{len} [{bar:30}] {msg} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_position(resume_step);
            bar
        });
        Ok(Self {
            run: run.clone(),
            tensorboard,
            progress,
            total_steps,
        })
    }

    /// Appends a record to metrics.jsonl and TensorBoard, and shows it.
    pub fn record(&mut self, record: &MetricRecord) -> Result<(), TrainError> {
        let path = self.run.metrics();
        append_json_line(&path, record).map_err(TrainError::io(&path))?;
        let tb = self.run.tensorboard();
        write_events(&mut self.tensorboard, record).map_err(TrainError::io(&tb))?;
        self.tensorboard.flush().map_err(TrainError::io(&tb))?;
        match (record.kind, &self.progress) {
            (MetricKind::Train, Some(bar)) => {
                bar.set_position(record.step);
                bar.set_message(format!(
                    "loss {:.4} {:.0} tok/s",
                    record.loss,
                    record.tokens_per_s.unwrap_or(0.0)
                ));
            }
            (MetricKind::Val, Some(bar)) => bar.println(format!(
                "step {}: validation loss {:.4}",
                record.step, record.loss
            )),
            (MetricKind::Train, None) => tracing::info!(
                "step {}/{} loss {:.4} lr {:.3e} grad_norm {:.3} {:.0} tok/s",
                record.step,
                self.total_steps,
                record.loss,
                record.lr.unwrap_or(0.0),
                record.grad_norm.unwrap_or(0.0),
                record.tokens_per_s.unwrap_or(0.0)
            ),
            (MetricKind::Val, None) => {
                tracing::info!("step {}: validation loss {:.4}", record.step, record.loss)
            }
        }
        Ok(())
    }

    /// Writes status.json.
    pub fn status(&self, status: &RunStatus) -> Result<(), TrainError> {
        let path = self.run.status();
        write_json_atomic(&path, status).map_err(TrainError::io(&path))
    }

    /// Ends the progress bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.progress {
            bar.finish();
        }
    }

    pub fn status_now(&self, state: RunState, step: u64, tokens: u64) -> RunStatus {
        RunStatus::now(state, step, self.total_steps, tokens)
    }
}

fn write_events(tb: &mut EventWriter, r: &MetricRecord) -> std::io::Result<()> {
    let wall = forgetlab_runs::unix_now();
    match r.kind {
        MetricKind::Train => {
            tb.scalar("train/loss", r.step, r.loss, wall)?;
            if let Some(lr) = r.lr {
                tb.scalar("train/lr", r.step, lr, wall)?;
            }
            if let Some(g) = r.grad_norm {
                tb.scalar("train/grad_norm", r.step, g, wall)?;
            }
            if let Some(t) = r.tokens_per_s {
                tb.scalar("train/tokens_per_s", r.step, t, wall)?;
            }
            Ok(())
        }
        MetricKind::Val => tb.scalar("val/loss", r.step, r.loss, wall),
    }
}
