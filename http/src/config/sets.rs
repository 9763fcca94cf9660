//! Limit sets and routes in a [`Config`](super::Config).

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;

use http::Method;
use limiter_core::RateLimit;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::key::KeyConfig;
use crate::{Limits, Route};

/// Limits in the text grammar (`"10 per minute; 100 per hour"`), parsed when
/// deserialized: a malformed string is an error at its position in the file.
#[derive(Clone, PartialEq, Eq)]
pub struct LimitList {
    text: String,
    parsed: Arc<[RateLimit]>,
}

impl LimitList {
    /// The limits, parsed.
    pub fn limits(&self) -> &[RateLimit] {
        &self.parsed
    }

    /// Parses `text`.
    ///
    /// # Errors
    ///
    /// A message for a malformed or empty limit string.
    pub fn parse(text: &str) -> Result<LimitList, String> {
        let parsed =
            limiter_core::parse_many(text).map_err(|e| format!("malformed limit {text:?}: {e}"))?;
        if parsed.is_empty() {
            return Err("no limits given".to_owned());
        }
        Ok(LimitList {
            text: text.to_owned(),
            parsed: parsed.into(),
        })
    }
}

impl fmt::Debug for LimitList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for LimitList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.parsed.iter().map(ToString::to_string).collect();
        f.write_str(&texts.join("; "))
    }
}

impl<'de> Deserialize<'de> for LimitList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LimitList::parse(&text).map_err(de::Error::custom)
    }
}

/// An HTTP method name such as `POST` (case-insensitive in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodName(pub Method);

impl<'de> Deserialize<'de> for MethodName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let upper = text.to_ascii_uppercase();
        Method::from_bytes(upper.as_bytes())
            .map(MethodName)
            .map_err(|_| de::Error::custom(format!("{text:?} is not an HTTP method")))
    }
}

/// A set of limits with its options: a limit string alone
/// (`"10 per minute"`), or a table with `limits` and any of `methods`, `per_method`,
/// `cost`, `shared` and `key`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LimitSet {
    /// The limits.
    pub limits: LimitList,
    /// Only requests with these methods count. Default: every method.
    pub methods: Option<Vec<MethodName>>,
    /// Each method counts apart. Default: `false`.
    pub per_method: bool,
    /// What one request costs. Default: 1.
    pub cost: NonZeroU64,
    /// One budget under this name, shared by every set that names it.
    pub shared: Option<String>,
    /// Where these limits find the client, instead of the limiter's `key`.
    pub key: Option<KeyConfig>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    limits: LimitList,
    #[serde(default)]
    methods: Option<Vec<MethodName>>,
    #[serde(default)]
    per_method: bool,
    #[serde(default)]
    cost: Option<u64>,
    #[serde(default)]
    shared: Option<String>,
    #[serde(default)]
    key: Option<KeyConfig>,
}

impl TryFrom<RawSet> for LimitSet {
    type Error = String;

    fn try_from(raw: RawSet) -> Result<LimitSet, String> {
        let cost = match raw.cost {
            None => NonZeroU64::MIN,
            Some(n) => NonZeroU64::new(n).ok_or("a request costs at least 1 (cost = 0)")?,
        };
        if raw.shared.as_deref() == Some("") {
            return Err("a shared scope needs a name (shared = \"\")".into());
        }
        if raw.methods.as_ref().is_some_and(Vec::is_empty) {
            return Err("an empty `methods` list would apply the limits to nothing".into());
        }
        Ok(LimitSet {
            limits: raw.limits,
            methods: raw.methods,
            per_method: raw.per_method,
            cost,
            shared: raw.shared,
            key: raw.key,
        })
    }
}

impl LimitSet {
    fn text(limits: LimitList) -> LimitSet {
        LimitSet {
            limits,
            methods: None,
            per_method: false,
            cost: NonZeroU64::MIN,
            shared: None,
            key: None,
        }
    }

    /// The builder's [`Limits`] for this set; `methods` applies when the set has no
    /// method filter of its own.
    pub fn limits(&self, methods: Option<&[MethodName]>) -> Limits {
        let mut limits =
            Limits::from_limits(self.limits.limits().iter().cloned()).cost(self.cost.get());
        if let Some(methods) = self.methods.as_deref().or(methods) {
            limits = limits.methods(methods.iter().map(|m| m.0.clone()));
        }
        if self.per_method {
            limits = limits.per_method();
        }
        if let Some(scope) = &self.shared {
            limits = limits.shared(scope.clone());
        }
        if let Some(key) = &self.key {
            limits = limits.key(key.source());
        }
        limits
    }
}

impl<'de> Deserialize<'de> for LimitSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SetVisitor;

        impl<'de> Visitor<'de> for SetVisitor {
            type Value = LimitSet;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a limit string such as \"10 per minute\", or a table with `limits`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<LimitSet, E> {
                LimitList::parse(text)
                    .map(LimitSet::text)
                    .map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LimitSet, A::Error> {
                let raw = RawSet::deserialize(de::value::MapAccessDeserializer::new(map))?;
                LimitSet::try_from(raw).map_err(de::Error::custom)
            }
        }

        d.deserialize_any(SetVisitor)
    }
}

/// A route and its limits: `path` is the route pattern as the router writes it
/// (`/users/{id}` with axum), and exactly one of `limits`, `exempt = true` and
/// `exempt_from_defaults = true` says what applies.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RouteConfig {
    /// The route pattern.
    pub path: String,
    /// The route's own limit sets (they replace the defaults unless
    /// `with_defaults`).
    pub limits: Vec<LimitSet>,
    /// Applies to each of the route's sets without a method filter of its own.
    pub methods: Option<Vec<MethodName>>,
    /// Keep the default limits as well. Default: `false`.
    pub with_defaults: bool,
    /// No limit at all.
    pub exempt: bool,
    /// No default limits; application limits still apply.
    pub exempt_from_defaults: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    #[serde(default)]
    limits: Vec<LimitSet>,
    #[serde(default)]
    methods: Option<Vec<MethodName>>,
    #[serde(default)]
    with_defaults: bool,
    #[serde(default)]
    exempt: bool,
    #[serde(default)]
    exempt_from_defaults: bool,
}

impl TryFrom<RawRoute> for RouteConfig {
    type Error = String;

    fn try_from(raw: RawRoute) -> Result<RouteConfig, String> {
        let path = &raw.path;
        if !path.starts_with('/') {
            return Err(format!("route path {path:?} must start with /"));
        }
        let kinds = [!raw.limits.is_empty(), raw.exempt, raw.exempt_from_defaults];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(format!(
                "route {path:?} needs exactly one of `limits`, `exempt = true` and \
                 `exempt_from_defaults = true`"
            ));
        }
        if raw.limits.is_empty() && (raw.with_defaults || raw.methods.is_some()) {
            return Err(format!(
                "route {path:?}: `with_defaults` and `methods` need `limits`"
            ));
        }
        if raw.methods.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!(
                "route {path:?}: an empty `methods` list would apply the limits to nothing"
            ));
        }
        Ok(RouteConfig {
            path: raw.path,
            limits: raw.limits,
            methods: raw.methods,
            with_defaults: raw.with_defaults,
            exempt: raw.exempt,
            exempt_from_defaults: raw.exempt_from_defaults,
        })
    }
}

impl<'de> Deserialize<'de> for RouteConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RouteConfig::try_from(RawRoute::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl RouteConfig {
    /// The builder's [`Route`].
    pub fn route(&self) -> Route {
        if self.exempt {
            return Route::exempt();
        }
        if self.exempt_from_defaults {
            return Route::exempt_from_defaults();
        }
        let mut sets = self
            .limits
            .iter()
            .map(|s| s.limits(self.methods.as_deref()));
        let mut route = Route::default();
        if let Some(first) = sets.next() {
            route = Route::limits(first);
        }
        for set in sets {
            route = route.and(set);
        }
        if self.with_defaults {
            route = route.with_defaults();
        }
        route
    }
}

/// The routes of a [`Config`](super::Config), each path at most once.
#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<RouteConfig>);

impl Routes {
    /// The routes in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, RouteConfig> {
        self.0.iter()
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Routes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let routes = Vec::<RouteConfig>::deserialize(d)?;
        let mut seen = HashSet::new();
        for route in &routes {
            if !seen.insert(route.path.as_str()) {
                return Err(de::Error::custom(format!(
                    "route {:?} is configured twice; give one route several limit sets instead",
                    route.path
                )));
            }
        }
        Ok(Routes(routes))
    }
}
