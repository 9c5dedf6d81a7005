//! Data parallelism over model replicas.
//!
//! The micro-batches of an optimizer step are independent until their gradients are summed, so
//! they can run at the same time: each worker takes a replica of the model (forked from it:
//! fresh autodiff leaves with the same parameter ids, on the worker's device), computes whole
//! micro-batches, and hands back their gradients. burn's autodiff keeps a separate graph, behind
//! its own lock, for each set of connected tensors, so replicas never contend for one graph.
//!
//! On the CPU this is what fills the cores: burn's Flex backend threads its matrix products but
//! runs elementwise kernels, most of a Mamba-2 step, on one thread. Several CPU workers on the
//! one CPU device overlap those. With several GPUs each worker owns a device and its gradients
//! travel to the first device to be summed.
//!
//! The sum is taken on the calling thread in micro-batch order, whatever order the workers
//! finish in. The result therefore does not depend on the number of workers: one worker, two
//! workers and the sequential trainer give bit-identical gradients on the CPU, so a run may
//! resume with a different number of workers and still continue exactly.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;

use crate::Model;

/// A loss (scaled as the caller likes) and the gradients of the model's parameters: what one
/// micro-batch contributes, or their sum.
pub struct LossAndGradients {
    pub loss: f64,
    pub grads: GradientsParams,
}

/// Runs `work` on every job and returns the summed loss and gradients, summed in job order.
///
/// `workers` lists the autodiff device of each worker; one entry (or one job) runs everything
/// on the calling thread with `model` itself, on `main`. `work` gets the replica, its device
/// and the job. `stop` is checked before each job; once it returns true no new job starts and
/// the result is `None` (the step is abandoned).
pub fn summed_gradients<J, W, S>(
    model: &Model,
    main: &Device,
    workers: &[Device],
    jobs: Vec<J>,
    work: W,
    stop: S,
) -> Option<LossAndGradients>
where
    J: Send,
    W: Fn(&Model, &Device, J) -> LossAndGradients + Sync,
    S: Fn() -> bool + Sync,
{
    let mut sum = Sum::new(model, main);
    if workers.len() <= 1 || jobs.len() <= 1 {
        for job in jobs {
            if stop() {
                return None;
            }
            sum.add(work(model, main, job));
        }
        return Some(sum.finish());
    }

    let total = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let (sender, receiver) = mpsc::channel::<(usize, LossAndGradients)>();
    let mut folded = 0;
    std::thread::scope(|scope| {
        for device in workers.iter().take(total) {
            let replica = model.clone();
            let sender = sender.clone();
            let (queue, work, stop) = (&queue, &work, &stop);
            scope.spawn(move || {
                let replica = replica.fork(device);
                loop {
                    if stop() {
                        return;
                    }
                    let next = queue.lock().map(|mut q| q.next());
                    let Ok(Some((index, job))) = next else {
                        return;
                    };
                    if sender.send((index, work(&replica, device, job))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        // Fold in job order; results that arrive early wait for their predecessors.
        let mut waiting = BTreeMap::new();
        for (index, result) in receiver {
            waiting.insert(index, result);
            while let Some(result) = waiting.remove(&folded) {
                sum.add(result);
                folded += 1;
            }
        }
    });
    (folded == total).then(|| sum.finish())
}

/// The running sum on the main device.
struct Sum<'a> {
    model: &'a Model,
    main: &'a Device,
    loss: f64,
    accumulator: GradientsAccumulator<Model>,
}

impl<'a> Sum<'a> {
    fn new(model: &'a Model, main: &'a Device) -> Self {
        Self {
            model,
            main,
            loss: 0.0,
            accumulator: GradientsAccumulator::new(),
        }
    }

    fn add(&mut self, part: LossAndGradients) {
        self.loss += part.loss;
        let grads = part.grads.to_device(self.main, self.model);
        self.accumulator.accumulate(self.model, grads);
    }

    fn finish(mut self) -> LossAndGradients {
        LossAndGradients {
            loss: self.loss,
            grads: self.accumulator.grads(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{flat_grads, tiny_config};

    /// Gradients of `jobs` micro-batches of random tokens, as one flat vector per parameter.
    fn gradients(workers: usize, stop_after: Option<usize>) -> Option<(f64, Vec<Vec<f32>>)> {
        let device = Device::flex().autodiff();
        let config = tiny_config();
        let model = Model::init(&config, 3, &device).unwrap();
        let replicas = vec![device.clone(); workers];
        let started = std::sync::atomic::AtomicUsize::new(0);
        let jobs: Vec<u64> = (0..5).collect();
        let summed = summed_gradients(
            &model,
            &device,
            &replicas,
            jobs,
            |replica, device, seed| {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let ids: Vec<i64> = (0..2 * 13)
                    .map(|i| ((i as u64 * 7919 + seed * 104_729) % config.vocab_size as u64) as i64)
                    .collect();
                let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 13]), device);
                let (loss, _) = replica.forward_loss(
                    ids.clone().narrow(1, 0, 12),
                    ids.narrow(1, 1, 12),
                    None,
                    &Default::default(),
                    0.01,
                );
                LossAndGradients {
                    loss: loss.value.into_scalar::<f32>() as f64,
                    grads: GradientsParams::from_grads(loss.surrogate.backward(), replica),
                }
            },
            || stop_after.is_some_and(|n| started.load(std::sync::atomic::Ordering::SeqCst) >= n),
        )?;
        Some((summed.loss, flat_grads(&model, &summed.grads)))
    }

    #[test]
    fn any_number_of_workers_gives_bit_identical_sums() {
        let (loss_1, grads_1) = gradients(1, None).unwrap();
        for workers in [2, 3] {
            let (loss_n, grads_n) = gradients(workers, None).unwrap();
            assert_eq!(loss_1.to_bits(), loss_n.to_bits(), "{workers} workers");
            assert!(
                grads_1 == grads_n,
                "gradients differ with {workers} workers"
            );
        }
        assert!(grads_1.iter().flatten().any(|&g| g != 0.0));
    }

    #[test]
    fn a_stop_abandons_the_sum() {
        assert!(gradients(1, Some(2)).is_none());
        assert!(gradients(2, Some(2)).is_none());
    }
}
