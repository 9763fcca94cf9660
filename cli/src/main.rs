//! `limiter`: the command line for the people who run services that use limiter.
//!
//! - `limiter config check FILE` validates a configuration file and prints the
//!   effective policy;
//! - `limiter status`, `limiter clear` read and reset one key's counter;
//! - `limiter ping` checks a storage and measures its round trip;
//! - `limiter bench` load-tests a storage with real decisions;
//! - `limiter completions SHELL` prints shell completions.
//!
//! Output is for people by default and JSON with `--json`. Errors are one line on
//! standard error and exit with status 1 (usage errors: 2).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod commands;
mod output;

use commands::{bench, config, ping, status};

/// Rate limiter operations: check configuration files, inspect and clear counters,
/// ping and load-test storages.
#[derive(Debug, Parser)]
#[command(name = "limiter", version, about, propagate_version = true)]
struct Cli {
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configuration files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Show a key's counter for a limit: remaining, reset time, retry-after (read-only).
    Status(status::StatusArgs),
    /// Reset a key's counter for a limit.
    Clear(status::ClearArgs),
    /// Check that a storage answers, and measure its round-trip latency.
    Ping(ping::PingArgs),
    /// Load-test a storage with rate-limit decisions.
    Bench(bench::BenchArgs),
    /// Print shell completions: `limiter completions bash > /etc/bash_completion.d/limiter`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// A failure to report: one line, exit status 1.
#[derive(Debug)]
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "limiter",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Config(command) => config::run(command, json),
        command => runtime().and_then(|rt| {
            rt.block_on(async move {
                match command {
                    Command::Status(args) => status::status(args, json).await,
                    Command::Clear(args) => status::clear(args, json).await,
                    Command::Ping(args) => ping::run(args, json).await,
                    Command::Bench(args) => bench::run(args, json).await,
                    Command::Config(_) | Command::Completions { .. } => Ok(()),
                }
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("limiter: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
