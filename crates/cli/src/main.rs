//! `daikai`: parse the command line and the environment, run, map the outcome to an exit code.

use std::process::ExitCode;

use cli::{Command, Env, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match Command::parse(&args) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("daikai: {err}");
            return ExitCode::from(2);
        }
    };
    let env = Env::from_lookup(|name| std::env::var(name).ok());
    match run(&command, &env, &mut std::io::stdout().lock()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("daikai: {err:#}");
            ExitCode::FAILURE
        }
    }
}
