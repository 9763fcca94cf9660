//! `limiter status` and `limiter clear`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use limiter::{Key, RateLimiter};
use serde_json::json;

use super::{limiter, storage, Target};
use crate::output::{duration, print_json};
use crate::Failure;

/// Arguments of `limiter status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Refresh until interrupted (with --json: one JSON document per line).
    #[arg(long)]
    watch: bool,
    /// The refresh interval with --watch, such as 500ms or 2s.
    #[arg(long, default_value = "1s", value_parser = limiter_duration)]
    interval: Duration,
}

/// Arguments of `limiter clear`.
#[derive(Debug, clap::Args)]
pub(crate) struct ClearArgs {
    #[command(flatten)]
    target: Target,
    /// Clear without asking (required when standard input is not a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

fn limiter_duration(text: &str) -> Result<Duration, String> {
    super::bench::parse_duration(text)
}

fn key(target: &Target) -> Key {
    Key::new(target.key.iter().map(String::as_str))
}

async fn open(target: &Target) -> Result<RateLimiter, Failure> {
    let storage = storage(&target.storage).await?;
    Ok(limiter(
        storage,
        target.strategy,
        target.namespace.as_deref(),
    ))
}

/// Epoch milliseconds as an HTTP date.
fn date(millis: u64) -> String {
    limiter::http::http_date(millis.div_ceil(1000))
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) async fn status(args: StatusArgs, json: bool) -> Result<(), Failure> {
    let limiter = open(&args.target).await?;
    let key = key(&args.target);
    let limit = &args.target.limit;
    loop {
        // A peek: nothing is counted.
        let decision = limiter.test(limit, &key, 1).await?;
        let reset_at = decision.reset_at().map(|t| t.as_millis());
        let reset_after = decision.reset_after();
        let retry_after = decision.retry_after();
        if json {
            let value = json!({
                "key": args.target.key,
                "limit": limit.to_string(),
                "strategy": args.target.strategy.name(),
                "amount": limit.amount(),
                "remaining": decision.remaining(),
                "allowed": decision.is_allowed(),
                "reset_at_ms": reset_at,
                "reset_after_ms": reset_after.map(|d| d.as_millis()),
                "retry_after_ms": retry_after.map(|d| d.as_millis()),
                "checked_at_ms": now_millis(),
            });
            if args.watch {
                // One compact document per line (JSON Lines) while watching.
                println!("{value}");
            } else {
                print_json(&value);
            }
        } else {
            let reset = match (reset_after, reset_at) {
                _ if decision.remaining() >= limit.amount() => "now (nothing counted)".to_owned(),
                (Some(after), Some(at)) => format!("in {} ({})", duration(after), date(at)),
                _ => "never".to_owned(),
            };
            let retry = match (decision.is_allowed(), retry_after) {
                (true, _) => "now".to_owned(),
                (false, Some(wait)) => format!("in {}", duration(wait)),
                (false, None) => "never (the limit is below one request)".to_owned(),
            };
            println!("key        {}", args.target.key.join(" / "));
            println!("limit      {limit} ({})", args.target.strategy.name());
            println!("remaining  {} of {}", decision.remaining(), limit.amount());
            println!("resets     {reset}");
            println!("next hit   {retry}");
        }
        if !args.watch {
            return Ok(());
        }
        std::io::stdout().flush()?;
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        if !json {
            println!();
        }
    }
}

pub(crate) async fn clear(args: ClearArgs, json: bool) -> Result<(), Failure> {
    let target = &args.target;
    if !args.yes {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(Failure(
                "refusing to clear without --yes: standard input is not a terminal".into(),
            ));
        }
        eprint!(
            "Clear the counter of key {:?} for {} on {}? [y/N] ",
            target.key.join(" / "),
            target.limit,
            limiter::config::redact(&target.storage)
        );
        std::io::stderr().flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            return Err(Failure("not cleared".into()));
        }
    }
    let limiter = open(target).await?;
    limiter.clear(&target.limit, &key(target)).await?;
    if json {
        print_json(&json!({
            "key": target.key,
            "limit": target.limit.to_string(),
            "strategy": target.strategy.name(),
            "cleared": true,
        }));
    } else {
        println!(
            "cleared key {} for {} ({})",
            target.key.join(" / "),
            target.limit,
            target.strategy.name()
        );
    }
    Ok(())
}
