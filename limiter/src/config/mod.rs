//! Configuration files: the storage and the whole HTTP policy from one TOML file
//! (feature `config`), with environment overrides and reloading.
//!
//! The policy's schema is [`limiter_http::config::Config`]; this module plugs the
//! storage into it ([`StorageConfig`]), reads files, and applies the environment.
//! `examples/limiter.toml` in the repository documents every field.
//!
//! ```
//! # #[cfg(feature = "memory")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use limiter::config::Loader;
//!
//! let config = Loader::without_env().parse(r#"
//!     strategy = "sliding-window-counter"
//!     default_limits = ["10 per minute"]
//!     [storage]
//!     uri = "memory://"
//! "#, "inline.toml")?;
//! let limiter = limiter::config::build(&config).await?;
//! # let _ = limiter;
//!
//! let err = Loader::without_env().parse("default_limits = [\"10 per fortnight\"]", "bad.toml").unwrap_err();
//! assert!(err.to_string().starts_with("bad.toml:1:19: default_limits[0]: malformed limit"), "{err}");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "memory"))] fn main() {}
//! ```
//!
//! # Environment variables
//!
//! A variable overrides the field whose path in the file it spells: `LIMITER_`, then
//! the path upper-cased with `.` as `_`: `LIMITER_STORAGE_URI` (which replaces the
//! whole `[storage]` table), `LIMITER_STRATEGY`, `LIMITER_ENABLED`,
//! `LIMITER_DEFAULT_LIMITS`, `LIMITER_FAILURE_DEADLINE`, `LIMITER_KEY_TRUSTED_HOPS`…
//! ([`variables`] lists them all). Every top-level field and every field of the
//! `key`, `headers`, `failure` and `charge` tables has one; routes and the storage
//! option tables have none. Limit lists take one limit string (`"10 per minute; 100
//! per hour"`, or empty for none), `trusted_networks` a comma-separated list, flags
//! `true` or `false`. The file must be valid on its own; the variables are applied
//! to it, and a value that does not fit is an error naming the variable.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use limiter_core::{RateLimiterBuilder, Storage};
use limiter_http::{BuildError, HttpLimiter, HttpLimiterBuilder, ReloadableLimiter};

mod env;
mod storage;

pub use env::variables;
pub use storage::{redact, StorageConfig};

/// The whole configuration of an HTTP service: its storage and its policy.
pub type Config = limiter_http::config::Config<StorageConfig>;

/// A configuration that could not be loaded or built. Each message is one line that
/// names the file, the position and the field, or the environment variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid: bad syntax, an unknown field, a malformed value or an
    /// impossible combination.
    #[error("{}", invalid(origin, *line, *column, path, message))]
    Invalid {
        /// The file (or where the text came from).
        origin: String,
        /// The line of the offending value, from 1, when known.
        line: Option<usize>,
        /// Its column, from 1, when known.
        column: Option<usize>,
        /// The field's path, such as `routes[1].limits[0]`; empty for the document.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable's value does not fit its field.
    #[error("environment variable {variable}: {message}")]
    Env {
        /// The variable.
        variable: String,
        /// What is wrong.
        message: String,
    },
    /// No storage is configured.
    #[error("{origin}: no storage: add a [storage] table with `uri` (or set LIMITER_STORAGE_URI)")]
    MissingStorage {
        /// The file.
        origin: String,
    },
    /// The storage could not be built or reached.
    #[error("storage: {0}")]
    Storage(#[from] crate::UriError),
    /// The limiter could not be built.
    #[error("{0}")]
    Build(#[from] BuildError),
}

fn invalid(
    origin: &str,
    line: Option<usize>,
    column: Option<usize>,
    path: &str,
    message: &str,
) -> String {
    let mut out = origin.to_owned();
    if let (Some(line), Some(column)) = (line, column) {
        out.push_str(&format!(":{line}:{column}"));
    }
    out.push_str(": ");
    if !path.is_empty() && path != "." {
        out.push_str(path);
        out.push_str(": ");
    }
    // toml's messages may span lines; keep one.
    out.push_str(&message.trim().replace('\n', " "));
    out
}

/// The Levenshtein distance between `a` and `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The line and column (from 1) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before, |i| &before[i + 1..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Reads configuration files, with the overrides of an environment.
#[derive(Debug, Clone, Default)]
pub struct Loader {
    vars: Vec<(String, String)>,
}

impl Loader {
    /// A loader with this process's `LIMITER_*` environment variables.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Env`] for a `LIMITER_*` variable whose value is not UTF-8.
    pub fn from_env() -> Result<Loader, ConfigError> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().filter(|n| n.starts_with("LIMITER_")) else {
                continue;
            };
            let value = value.into_string().map_err(|_| ConfigError::Env {
                variable: name.to_owned(),
                message: "the value is not UTF-8".into(),
            })?;
            vars.push((name.to_owned(), value));
        }
        Ok(Loader { vars })
    }

    /// A loader that reads the file only.
    pub fn without_env() -> Loader {
        Loader::default()
    }

    /// A loader with these variables as the environment.
    pub fn with_env<I, K, V>(vars: I) -> Loader
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Loader {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The variables that override fields, in the order they apply.
    pub fn overrides(&self) -> Vec<String> {
        let names: Vec<String> = variables().map(|(name, _)| name).collect();
        names
            .into_iter()
            .filter(|name| self.vars.iter().any(|(n, _)| n == name))
            .collect()
    }

    /// `LIMITER_*` variables that override nothing but are one or two letters away
    /// from a variable that does, each with that variable: most likely misspelt.
    /// (Others, such as the tests' `LIMITER_REDIS_URL`, are left alone.)
    pub fn misspelt(&self) -> Vec<(String, String)> {
        let known: Vec<String> = variables().map(|(name, _)| name).collect();
        self.vars
            .iter()
            .map(|(name, _)| name)
            .filter(|name| !known.contains(name))
            .filter_map(|name| {
                known
                    .iter()
                    .map(|k| (edit_distance(name, k), k))
                    .filter(|(d, _)| *d <= 2)
                    .min()
                    .map(|(_, k)| (name.clone(), k.clone()))
            })
            .collect()
    }

    /// Reads and checks the file at `path`, then applies the environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`], [`ConfigError::Invalid`] or [`ConfigError::Env`].
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        self.parse(&text, &path.display().to_string())
    }

    /// Checks the TOML `text` (from `origin`, for messages), then applies the
    /// environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] or [`ConfigError::Env`].
    pub fn parse(&self, text: &str, origin: &str) -> Result<Config, ConfigError> {
        let toml_error = |e: toml::de::Error, path: String| {
            let position = e.span().map(|span| line_column(text, span.start));
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line: position.map(|p| p.0),
                column: position.map(|p| p.1),
                path,
                message: e.message().to_owned(),
            }
        };
        let document = toml::Deserializer::parse(text).map_err(|e| toml_error(e, String::new()))?;
        let config: Config = serde_path_to_error::deserialize(document)
            .map_err(|e| toml_error(e.inner().clone(), e.path().to_string()))?;
        let overrides = env::overrides(&self.vars)
            .map_err(|(variable, message)| ConfigError::Env { variable, message })?;
        if overrides.is_empty() {
            return Ok(config);
        }
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| toml_error(e, String::new()))?;
        for o in &overrides {
            env::apply(&mut table, o);
        }
        serde_path_to_error::deserialize(table).map_err(|e| {
            let path = e.path().to_string();
            let culprit = overrides
                .iter()
                .rev()
                .find(|o| path.starts_with(o.path) || o.path.starts_with(&path));
            match culprit {
                Some(o) => ConfigError::Env {
                    variable: o.variable.clone(),
                    message: e.inner().message().to_owned(),
                },
                None => ConfigError::Invalid {
                    origin: format!("{origin} with LIMITER_* overrides"),
                    line: None,
                    column: None,
                    path,
                    message: e.inner().message().to_owned(),
                },
            }
        })
    }
}

/// The storage of `config`, connected.
///
/// # Errors
///
/// [`ConfigError::MissingStorage`] or [`ConfigError::Storage`].
pub async fn connect(config: &Config) -> Result<Arc<dyn Storage>, ConfigError> {
    let storage = config
        .storage
        .as_ref()
        .ok_or_else(|| ConfigError::MissingStorage {
            origin: "configuration".into(),
        })?;
    Ok(storage.connect().await?)
}

/// The limiter `config` describes, its storage connected, with the system clock.
///
/// # Errors
///
/// [`ConfigError::MissingStorage`], [`ConfigError::Storage`] or
/// [`ConfigError::Build`].
pub async fn build(config: &Config) -> Result<HttpLimiter, ConfigError> {
    let storage = connect(config).await?;
    Ok(config.build(storage)?)
}

type Tune<B> = Arc<dyn Fn(B) -> B + Send + Sync>;

/// A service's limiter, loaded from a file and reloaded from it on demand: requests
/// read [`handle`](Self::handle) (its [`layer`](ReloadableLimiter::layer) with
/// tower), [`reload`](Self::reload) swaps in the policy the file holds now.
///
/// A reload keeps the storage when its table is unchanged, so the counts of every
/// limit the new policy still has carry over (a limit whose amount or window changed
/// is stored under another key and starts afresh, as do all limits when the strategy
/// or namespace changes); requests in flight finish under the policy they started
/// with. An invalid file
/// leaves the running policy in place and returns the error.
pub struct Reloader {
    path: PathBuf,
    loader: Loader,
    config: Config,
    storage: Arc<dyn Storage>,
    handle: ReloadableLimiter,
    tune_core: Tune<RateLimiterBuilder>,
    tune_http: Tune<HttpLimiterBuilder>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Loads `path` with `loader` and builds its limiter.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`].
    pub async fn start(path: impl Into<PathBuf>, loader: Loader) -> Result<Reloader, ConfigError> {
        Reloader::start_with(path, loader, |b| b, |b| b).await
    }

    /// As [`start`](Self::start), with code applied to every limiter built, first and
    /// on each reload: `core` to the core limiter's builder (a clock, say), `http` to
    /// the HTTP builder (callbacks, metrics).
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`].
    pub async fn start_with<C, H>(
        path: impl Into<PathBuf>,
        loader: Loader,
        core: C,
        http: H,
    ) -> Result<Reloader, ConfigError>
    where
        C: Fn(RateLimiterBuilder) -> RateLimiterBuilder + Send + Sync + 'static,
        H: Fn(HttpLimiterBuilder) -> HttpLimiterBuilder + Send + Sync + 'static,
    {
        let path = path.into();
        let config = loader.load(&path)?;
        let storage = connect_named(&config, &path).await?;
        let tune_core: Tune<RateLimiterBuilder> = Arc::new(core);
        let tune_http: Tune<HttpLimiterBuilder> = Arc::new(http);
        let limiter = assemble(&config, storage.clone(), &tune_core, &tune_http)?;
        Ok(Reloader {
            path,
            loader,
            config,
            storage,
            handle: ReloadableLimiter::new(limiter),
            tune_core,
            tune_http,
        })
    }

    /// The handle requests read.
    pub fn handle(&self) -> &ReloadableLimiter {
        &self.handle
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads the file again and, if it is valid, makes its policy current.
    ///
    /// # Errors
    ///
    /// Any [`ConfigError`]; the running policy stays.
    pub async fn reload(&mut self) -> Result<(), ConfigError> {
        let config = self.loader.load(&self.path)?;
        let storage = if config.storage == self.config.storage {
            self.storage.clone()
        } else {
            connect_named(&config, &self.path).await?
        };
        let limiter = assemble(&config, storage.clone(), &self.tune_core, &self.tune_http)?;
        self.handle.replace(limiter);
        self.config = config;
        self.storage = storage;
        Ok(())
    }
}

async fn connect_named(config: &Config, path: &Path) -> Result<Arc<dyn Storage>, ConfigError> {
    connect(config).await.map_err(|e| match e {
        ConfigError::MissingStorage { .. } => ConfigError::MissingStorage {
            origin: path.display().to_string(),
        },
        other => other,
    })
}

fn assemble(
    config: &Config,
    storage: Arc<dyn Storage>,
    core: &Tune<RateLimiterBuilder>,
    http: &Tune<HttpLimiterBuilder>,
) -> Result<HttpLimiter, ConfigError> {
    let limiter = core(config.limiter_builder(storage)).build();
    Ok(http(config.http_builder(limiter)).build()?)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn edit_distances() {
        use super::edit_distance;
        assert_eq!(edit_distance("LIMITER_STRATEGGY", "LIMITER_STRATEGY"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn positions_count_from_one() {
        assert_eq!(line_column("a\nbc", 0), (1, 1));
        assert_eq!(line_column("a\nbc", 3), (2, 2));
        assert_eq!(line_column("é = 1", 3), (1, 3));
    }
}
