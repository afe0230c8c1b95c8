//! `daikai`: parse the command line and the environment, run, map the outcome to an exit code
//! (docs/operations.md §8).

use std::process::ExitCode;

use clap::Parser as _;
use cli::{Cli, Env, exit, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            drop(err.print());
            return ExitCode::from(if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let env = Env::new(&cli.global, |name| std::env::var(name).ok());
    match run(&cli, &env, &mut std::io::stdout().lock()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("daikai: {err:#}");
            ExitCode::from(exit::code_of(&err))
        }
    }
}
