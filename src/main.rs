//! The `goim` binary: reads `.env`, parses the command line and hands over to
//! [`goim::cli::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(error) if error.not_found() => {}
        Err(error) => {
            eprintln!("goim: invalid configuration: .env: {error}");
            return ExitCode::from(2);
        }
    }
    match goim::config::Cli::try_parse() {
        Ok(cli) => goim::cli::run(cli),
        Err(error) => goim::cli::report_parse_error(error),
    }
}
