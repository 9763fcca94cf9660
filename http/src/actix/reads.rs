//! What deciding can read of a request's headers: actix-web's headers are another
//! type than the engine's, so the middleware copies into the engine's map only what
//! the limiter, or its own route rule, can look at.

use crate::plan::{CompiledRoute, Set, SetLimits};
use crate::policy::Cost;
use crate::rejection::RejectionBody;
use crate::HttpLimiter;

/// Which request headers deciding can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum HeadersRead {
    /// None: keys from the peer address, no function of the application's.
    #[default]
    Nothing,
    /// These headers (client addresses from proxies, keys from a header).
    Named(Vec<http::HeaderName>),
    /// Any: a function of the application sees the request.
    All,
}

impl HeadersRead {
    /// Also what `other` reads.
    pub(crate) fn add(&mut self, other: HeadersRead) {
        match (&mut *self, other) {
            (HeadersRead::All, _) | (_, HeadersRead::Nothing) => {}
            (_, HeadersRead::All) => *self = HeadersRead::All,
            (HeadersRead::Nothing, named) => *self = named,
            (HeadersRead::Named(names), HeadersRead::Named(more)) => {
                for name in more {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
    }

    /// [`All`](Self::All) when `function` is set, else nothing.
    fn when<T>(function: Option<&T>) -> HeadersRead {
        match function {
            Some(_) => HeadersRead::All,
            None => HeadersRead::Nothing,
        }
    }
}

/// What deciding with `limiter` can read, whatever the request's route: its sets,
/// its route table's, its filters, `on_breach` and a rejection body of its own.
pub(super) fn limiter_reads(limiter: &HttpLimiter) -> HeadersRead {
    let inner = &*limiter.inner;
    let mut read = sets_read(
        inner
            .defaults
            .iter()
            .chain(&inner.application)
            .chain(&inner.meta),
    );
    for route in inner.routes.values() {
        read.add(route_reads(route));
    }
    read.add(HeadersRead::when(inner.filters.first()));
    read.add(HeadersRead::when(inner.on_breach.as_ref()));
    if let RejectionBody::Custom(_) = inner.rejection {
        read = HeadersRead::All;
    }
    read
}

/// What deciding a route's own sets can read.
pub(super) fn route_reads(route: &CompiledRoute) -> HeadersRead {
    sets_read(&route.sets)
}

fn sets_read<'s>(sets: impl IntoIterator<Item = &'s Set>) -> HeadersRead {
    let mut read = HeadersRead::Nothing;
    for set in sets {
        read.add(set.key.headers_read());
        if let SetLimits::Dynamic(_) = set.limits {
            read = HeadersRead::All;
        }
        if let Cost::Dynamic(_) = set.cost {
            read = HeadersRead::All;
        }
        read.add(HeadersRead::when(set.exempt_when.as_ref()));
    }
    read
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::HeaderName;
    use limiter_core::RateLimiter;
    use limiter_memory::MemoryStorage;

    use super::{limiter_reads, HeadersRead};
    use crate::{
        HttpLimiterBuilder, KeySource, Limits, ProxyHeader, RejectionBody, Route, TrustedProxies,
    };

    fn builder() -> HttpLimiterBuilder {
        HttpLimiterBuilder::new(RateLimiter::new(Arc::new(MemoryStorage::new())))
    }

    fn read(builder: HttpLimiterBuilder) -> HeadersRead {
        limiter_reads(&builder.build().expect("build"))
    }

    fn named(names: &[&'static str]) -> HeadersRead {
        HeadersRead::Named(names.iter().map(|n| HeaderName::from_static(n)).collect())
    }

    #[test]
    fn what_deciding_reads_of_the_headers_follows_the_configuration() {
        assert_eq!(
            read(builder().default_limits("1/second")),
            HeadersRead::Nothing
        );
        let api_key = builder()
            .default_limits("1/second")
            .key(KeySource::header("x-api-key"));
        assert_eq!(read(api_key), named(&["x-api-key"]));
        let proxied = builder().application_limits(Limits::new("1/second").key(
            KeySource::forwarded(ProxyHeader::XForwardedFor, TrustedProxies::Hops(1)),
        ));
        assert_eq!(read(proxied), named(&["x-forwarded-for"]));
        // A route's own key, beside a default one: both.
        let both = builder()
            .default_limits("1/second")
            .key(KeySource::header("x-api-key"))
            .route(
                "/login",
                Route::limits(Limits::new("1/second").key(KeySource::forwarded(
                    ProxyHeader::Forwarded,
                    TrustedProxies::Hops(1),
                ))),
            );
        assert_eq!(read(both), named(&["x-api-key", "forwarded"]));
        // Any function of the application's sees the whole request.
        let functions: [HttpLimiterBuilder; 4] = [
            builder().default_limits(Limits::new("1/second").exempt_when(|_| false)),
            builder().default_limits(Limits::dynamic(|_| None)),
            builder().request_filter(|_| false),
            builder().rejection_body(RejectionBody::custom(|_, _| http::Response::default())),
        ];
        for builder in functions {
            assert_eq!(read(builder), HeadersRead::All);
        }
        let custom_key = builder()
            .default_limits("1/second")
            .key(KeySource::custom(|_| None));
        assert_eq!(read(custom_key), HeadersRead::All);
    }

    #[test]
    fn reading_all_absorbs_the_rest_and_names_are_kept_once() {
        let mut read = named(&["x-a"]);
        read.add(named(&["x-b", "x-a"]));
        assert_eq!(read, named(&["x-a", "x-b"]));
        read.add(HeadersRead::Nothing);
        assert_eq!(read, named(&["x-a", "x-b"]));
        read.add(HeadersRead::All);
        assert_eq!(read, HeadersRead::All);
        read.add(named(&["x-c"]));
        assert_eq!(read, HeadersRead::All);
    }
}
