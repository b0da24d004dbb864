//! One timed phase: a fixed list of tasks pulled from one queue by N concurrent
//! workers, each task timed on its own, with the phase's wall time and CPU per task.

use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use futures_util::future::try_join_all;

use super::{
    cpu::CpuMeter,
    stats::{Latencies, RunResult},
};

/// Runs `tasks` with `concurrency` workers; `run_one` returns how many results the task
/// got (search hits, messages on a page), reported as the mean per request.
pub async fn timed<'t, T, F, Fut>(
    cpu: &CpuMeter,
    tasks: &'t [T],
    concurrency: u32,
    run_one: F,
) -> anyhow::Result<Option<RunResult>>
where
    F: Fn(&'t T) -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let next = &AtomicUsize::new(0);
    let run_one = &run_one;
    let worker = || async move {
        let mut latencies = Latencies::default();
        let mut hits = 0;
        while let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
            let started = Instant::now();
            hits += run_one(task).await?;
            latencies.record(started.elapsed());
        }
        anyhow::Ok((latencies, hits))
    };
    let cpu_before = cpu.snapshot();
    let started = Instant::now();
    let results = try_join_all((0..concurrency).map(|_| worker())).await?;
    let wall = started.elapsed();
    let cpu = cpu_before.per_op(&cpu.snapshot(), tasks.len());
    let mut latencies = Latencies::default();
    let mut hits = 0;
    for (worker_latencies, worker_hits) in results {
        latencies.merge(worker_latencies);
        hits += worker_hits;
    }
    Ok(RunResult::new(&latencies, wall, Some(hits), cpu))
}
