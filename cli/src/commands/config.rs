//! `limiter config check`.

use std::path::PathBuf;

use limiter::config::{Config, Loader};
use limiter::http::config::{LimitSet, RouteConfig};
use serde_json::{json, Value};

use crate::output::print_json;
use crate::Failure;

/// `limiter config …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a configuration file and print the effective policy (with the
    /// LIMITER_* environment variables applied).
    Check {
        /// The file, such as limiter.toml.
        file: PathBuf,
        /// Ignore LIMITER_* environment variables.
        #[arg(long)]
        no_env: bool,
    },
}

pub(crate) fn run(command: ConfigCommand, json: bool) -> Result<(), Failure> {
    let ConfigCommand::Check { file, no_env } = command;
    let loader = if no_env {
        Loader::without_env()
    } else {
        Loader::from_env()?
    };
    let config = loader.load(&file)?;
    if config.storage.is_none() {
        return Err(Failure(format!(
            "{}: no storage: add a [storage] table with `uri` (or set LIMITER_STORAGE_URI)",
            file.display()
        )));
    }
    let (overrides, misspelt) = (loader.overrides(), loader.misspelt());
    if json {
        let mut value = describe_json(&config);
        if let Value::Object(map) = &mut value {
            map.insert("file".into(), json!(file.display().to_string()));
            map.insert("valid".into(), json!(true));
            map.insert("environment".into(), json!({
                    "applied": overrides,
                    "misspelt": misspelt.iter().map(|(name, meant)| json!({"variable": name, "did_you_mean": meant})).collect::<Vec<_>>(),
                }));
        }
        print_json(&value);
    } else {
        println!("{}: valid", file.display());
        print!("{}", describe(&config));
        if !overrides.is_empty() {
            println!("environment  {} applied", overrides.join(", "));
        }
        for (name, meant) in &misspelt {
            println!("warning      {name} overrides nothing: did you mean {meant}?");
        }
    }
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn set_text(set: &LimitSet) -> String {
    let mut text = set.limits.to_string();
    if let Some(methods) = &set.methods {
        let names: Vec<&str> = methods.iter().map(|m| m.0.as_str()).collect();
        text = format!("{}: {text}", names.join(","));
    }
    if set.per_method {
        text.push_str(", per method");
    }
    if set.cost.get() != 1 {
        text.push_str(&format!(", cost {}", set.cost));
    }
    if let Some(scope) = &set.shared {
        text.push_str(&format!(", shared {scope:?}"));
    }
    if let Some(key) = &set.key {
        text.push_str(&format!(", key: {key}"));
    }
    text
}

fn sets_text(sets: &[LimitSet]) -> String {
    if sets.is_empty() {
        return "none".into();
    }
    sets.iter().map(set_text).collect::<Vec<_>>().join(" | ")
}

fn route_text(route: &RouteConfig) -> String {
    if route.exempt {
        return "exempt from every limit".into();
    }
    if route.exempt_from_defaults {
        return "exempt from the defaults (application limits apply)".into();
    }
    let mut sets: Vec<String> = route.limits.iter().map(set_text).collect();
    if let Some(methods) = &route.methods {
        let names: Vec<&str> = methods.iter().map(|m| m.0.as_str()).collect();
        sets = sets
            .into_iter()
            .map(|s| {
                if s.contains(':') {
                    s
                } else {
                    format!("{}: {s}", names.join(","))
                }
            })
            .collect();
    }
    let defaults = if route.with_defaults {
        " (and the defaults)"
    } else {
        " (instead of the defaults)"
    };
    format!("{}{defaults}", sets.join(" | "))
}

fn headers_text(config: &Config) -> String {
    format!(
        "{}, Retry-After in {}",
        config.headers.style.name(),
        config.headers.retry_after.name()
    )
}

fn describe(config: &Config) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: String| out.push_str(&format!("{name:<12} {value}\n"));
    let storage = config
        .storage
        .as_ref()
        .map_or("none".into(), ToString::to_string);
    line("storage", storage);
    line("strategy", config.strategy.to_string());
    line(
        "namespace",
        config
            .namespace
            .clone()
            .unwrap_or_else(|| "(default)".into()),
    );
    line("enabled", yes_no(config.enabled).into());
    if !config.key_prefix.is_empty() {
        line("key prefix", config.key_prefix.clone());
    }
    line("key", config.key.to_string());
    line("headers", headers_text(config));
    line("429 body", config.rejection_body.name().to_owned());
    line("on failure", config.failure.to_string());
    line(
        "charged",
        format!(
            "unmatched {}, OPTIONS {}, 405 {}",
            yes_no(config.charge.unmatched),
            yes_no(config.charge.options),
            yes_no(config.charge.method_not_allowed)
        ),
    );
    line("defaults", sets_text(&config.default_limits));
    line("application", sets_text(&config.application_limits));
    line("meta", sets_text(&config.meta_limits));
    line("routes", config.routes.len().to_string());
    let width = config
        .routes
        .iter()
        .map(|r| r.path.len())
        .max()
        .unwrap_or(0);
    for route in config.routes.iter() {
        out.push_str(&format!(
            "  {:<width$}  {}\n",
            route.path,
            route_text(route)
        ));
    }
    out
}

fn set_json(set: &LimitSet) -> Value {
    json!({
        "limits": set.limits.limits().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "methods": set.methods.as_ref().map(|m| m.iter().map(|m| m.0.as_str().to_owned()).collect::<Vec<_>>()),
        "per_method": set.per_method,
        "cost": set.cost.get(),
        "shared": set.shared,
        "key": set.key.as_ref().map(ToString::to_string),
    })
}

fn describe_json(config: &Config) -> Value {
    let sets = |sets: &[LimitSet]| sets.iter().map(set_json).collect::<Vec<_>>();
    json!({
        "storage": config.storage.as_ref().map(ToString::to_string),
        "strategy": config.strategy.to_string(),
        "namespace": config.namespace,
        "enabled": config.enabled,
        "key_prefix": config.key_prefix,
        "key": config.key.to_string(),
        "headers": headers_text(config),
        "rejection_body": config.rejection_body.name(),
        "failure": config.failure.to_string(),
        "charge": {
            "unmatched": config.charge.unmatched,
            "options": config.charge.options,
            "method_not_allowed": config.charge.method_not_allowed,
        },
        "default_limits": sets(&config.default_limits),
        "application_limits": sets(&config.application_limits),
        "meta_limits": sets(&config.meta_limits),
        "routes": config.routes.iter().map(|r| json!({
            "path": r.path,
            "limits": sets(&r.limits),
            "methods": r.methods.as_ref().map(|m| m.iter().map(|m| m.0.as_str().to_owned()).collect::<Vec<_>>()),
            "with_defaults": r.with_defaults,
            "exempt": r.exempt,
            "exempt_from_defaults": r.exempt_from_defaults,
            "summary": route_text(r),
        })).collect::<Vec<_>>(),
    })
}
