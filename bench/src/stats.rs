//! Latency samples and how they become figures: nearest-rank percentiles within one run,
//! then the median of each per-run value across runs. The machines GOIM is measured on
//! are shared and noisy, so a single run is never the figure.

use std::time::Duration;

use serde::Serialize;

use super::cpu::CpuPerOp;

/// The latencies of one measured phase, in the order they were taken.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<Duration>,
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.samples.push(latency);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// The `q`-quantile (`0 < q <= 1`) by nearest rank: the smallest sample that at
    /// least `q` of all samples are at or below. With 100 samples, p99 is the
    /// second-largest; with fewer than 100 it is the largest.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 })
}

/// `1234.5` µs as "1.2 ms", `56.7` as "57 µs".
fn micros(us: f64) -> String {
    if us >= 1000.0 { format!("{:.1} ms", us / 1000.0) } else { format!("{us:.0} µs") }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// What was timed for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// Through the server: HTTP, authentication, the service, the database.
    Http,
    /// The same SQL called directly on the pool, without HTTP (a reference).
    Sql,
    /// One bare Argon2id verification (a reference).
    Argon2Verify,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Http => "http",
            Path::Sql => "sql",
            Path::Argon2Verify => "argon2",
        }
    }
}

/// Which figure a phase belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureKey {
    pub operation: &'static str,
    pub class: Option<&'static str>,
    pub path: Path,
    pub concurrency: u32,
    /// The figure this one is the same-run reference of.
    pub reference_for: Option<Box<FigureKey>>,
}

impl FigureKey {
    pub fn id(&self) -> String {
        let mut id = self.operation.to_owned();
        if let Some(class) = self.class {
            id.push('.');
            id.push_str(class);
        }
        format!("{id}.c{}.{}", self.concurrency, self.path.label())
    }
}

/// One figure in one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ops_per_sec: f64,
    /// Mean results per request (search), to show a fast answer is not an empty one.
    pub mean_hits: Option<f64>,
    pub cpu: Option<CpuPerOp>,
}

impl RunResult {
    pub fn new(latencies: &Latencies, wall: Duration, hits: Option<usize>, cpu: Option<CpuPerOp>) -> Option<Self> {
        let samples = latencies.len();
        Some(RunResult {
            samples,
            p50_ms: millis(latencies.percentile(0.50)?),
            p99_ms: millis(latencies.percentile(0.99)?),
            ops_per_sec: samples as f64 / wall.as_secs_f64().max(1e-9),
            mean_hits: hits.map(|total| total as f64 / samples.max(1) as f64),
            cpu,
        })
    }
}

/// A figure: the medians across runs of each per-run value, with the runs themselves.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub id: String,
    pub operation: &'static str,
    pub class: Option<&'static str>,
    pub path: Path,
    pub concurrency: u32,
    pub reference_for: Option<String>,
    /// Samples over all runs.
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ops_per_sec: f64,
    pub mean_hits: Option<f64>,
    /// CPU microseconds per operation: GOIM's process, and PostgreSQL's processes.
    pub cpu_goim_us_per_op: Option<f64>,
    pub cpu_postgres_us_per_op: Option<f64>,
    pub runs: Vec<RunResult>,
}

impl Figure {
    fn summarise(key: FigureKey, runs: Vec<RunResult>) -> Self {
        let of = |value: fn(&RunResult) -> Option<f64>| median(runs.iter().filter_map(value));
        Figure {
            id: key.id(),
            operation: key.operation,
            class: key.class,
            path: key.path,
            concurrency: key.concurrency,
            reference_for: key.reference_for.as_deref().map(FigureKey::id),
            samples: runs.iter().map(|r| r.samples).sum(),
            p50_ms: of(|r| Some(r.p50_ms)).unwrap_or(f64::NAN),
            p99_ms: of(|r| Some(r.p99_ms)).unwrap_or(f64::NAN),
            ops_per_sec: of(|r| Some(r.ops_per_sec)).unwrap_or(f64::NAN),
            mean_hits: of(|r| r.mean_hits),
            cpu_goim_us_per_op: of(|r| r.cpu.map(|c| c.goim_us)),
            cpu_postgres_us_per_op: of(|r| r.cpu.and_then(|c| c.postgres_us)),
            runs,
        }
    }

    /// One line for the terminal; a reference line names its ratio to the figure.
    pub fn summary_line(&self, reference_of: Option<&Figure>) -> String {
        let name = match self.class {
            Some(class) => format!("{} {}", self.operation, class),
            None => self.operation.to_owned(),
        };
        let mut line = format!(
            "{name:<22} {:<6} c={:<2} p50 {:>9.3} ms  p99 {:>9.3} ms  {:>8.1} op/s  n={:<5}",
            self.path.label(),
            self.concurrency,
            self.p50_ms,
            self.p99_ms,
            self.ops_per_sec,
            self.samples
        );
        if let Some(goim) = self.cpu_goim_us_per_op {
            line.push_str(&format!("  cpu/op {} goim", micros(goim)));
            if let Some(pg) = self.cpu_postgres_us_per_op {
                line.push_str(&format!(" + {} pg", micros(pg)));
            }
        }
        if let Some(hits) = self.mean_hits {
            line.push_str(&format!("  hits {hits:.1}"));
        }
        if let Some(figure) = reference_of {
            line.push_str(&format!("  (http p50 = {:.1}× this)", figure.p50_ms / self.p50_ms));
        }
        line
    }
}

/// Figures collected run by run, in the order they were first measured.
#[derive(Debug, Default)]
pub struct Figures {
    entries: Vec<(FigureKey, Vec<RunResult>)>,
}

impl Figures {
    pub fn record(&mut self, key: FigureKey, run: Option<RunResult>) {
        let Some(run) = run else { return };
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, runs)) => runs.push(run),
            None => self.entries.push((key, vec![run])),
        }
    }

    pub fn finish(self) -> Vec<Figure> {
        self.entries.into_iter().map(|(key, runs)| Figure::summarise(key, runs)).collect()
    }
}

/// Prints every figure's summary line, a reference next to the ratio to its figure.
pub fn print_figures(figures: &[Figure], runs: u32) {
    println!("\nfigures (medians of {runs} runs; p50/p99 within each run):");
    for figure in figures {
        let reference_of = figure.reference_for.as_ref().and_then(|id| figures.iter().find(|f| &f.id == id));
        println!("{}", figure.summary_line(reference_of));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latencies(millis: impl IntoIterator<Item = u64>) -> Latencies {
        let mut recorded = Latencies::default();
        for ms in millis {
            recorded.record(Duration::from_millis(ms));
        }
        recorded
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let recorded = latencies((1..=100).rev());
        assert_eq!(recorded.percentile(0.50), Some(Duration::from_millis(50)));
        assert_eq!(recorded.percentile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(latencies([7]).percentile(0.99), Some(Duration::from_millis(7)));
        assert_eq!(latencies([]).percentile(0.5), None);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([]), None);
    }

    #[test]
    fn a_figure_takes_the_median_of_each_run() {
        let key = FigureKey { operation: "login", class: None, path: Path::Http, concurrency: 1, reference_for: None };
        let mut figures = Figures::default();
        for ms in [10, 30, 20] {
            figures.record(key.clone(), RunResult::new(&latencies([ms, ms * 2]), Duration::from_secs(1), None, None));
        }
        let [figure] = figures.finish().try_into().unwrap();
        assert_eq!(figure.id, "login.c1.http");
        assert_eq!(figure.samples, 6);
        assert_eq!(figure.p50_ms, 20.0);
        assert_eq!(figure.p99_ms, 40.0);
    }
}
