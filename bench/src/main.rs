//! The `goim-bench` binary: reads `.env` as `goim` does, parses the command line and
//! hands over to [`goim_bench::run`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use goim_bench::args::BenchArgs;

fn main() -> ExitCode {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(error) if error.not_found() => {}
        Err(error) => {
            eprintln!("goim-bench: invalid configuration: .env: {error}");
            return ExitCode::from(2);
        }
    }
    match BenchArgs::try_parse() {
        Ok(args) => goim_bench::run(args),
        Err(error) => goim::cli::report_parse_error_of("goim-bench", &BenchArgs::command(), error),
    }
}
