//! The `goim` binary: reads `.env`, parses the command line and hands over to
//! [`goim::cli::run`] (or, for `goim service …`, to [`goim::os_service::run`]).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(error) if error.not_found() => {}
        Err(error) => {
            // dotenvy reads a backslash as an escape outside single quotes, which is what
            // a Windows path written as-is runs into.
            let hint = if error.to_string().contains('\\') {
                " (a Windows path: put it in single quotes, GOIM_DATA_DIR='C:\\goim\\data', or use forward slashes)"
            } else {
                ""
            };
            eprintln!("goim: invalid configuration: .env: {error}{hint}");
            return ExitCode::from(2);
        }
    }
    match goim::config::Cli::try_parse() {
        Ok(goim::config::Cli { config, command: Some(goim::config::Command::Service(command)) }) => {
            goim::os_service::run(command, &config)
        }
        Ok(cli) => goim::cli::run(cli),
        Err(error) => goim::cli::report_parse_error(error),
    }
}
