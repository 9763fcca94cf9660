//! Client keys: spoofed forwarding headers, trusted hops and networks, IPv6 groups.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod support;

use std::net::SocketAddr;

use limiter_http::{HttpLimiter, IpNet, KeySource, ProxyHeader, TrustedProxies};
use support::*;

async fn server(key: KeySource) -> SocketAddr {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("1 per minute")
        .key(key)
        .build()
        .unwrap();
    serve(routes().layer(limiter.layer())).await
}

async fn get(c: &reqwest::Client, addr: SocketAddr, headers: &[(&str, &str)]) -> u16 {
    send(c, addr, "GET", "/a", headers).await.status().as_u16()
}

#[tokio::test]
async fn spoofed_headers_are_not_trusted_by_default() {
    let addr = server(KeySource::peer()).await;
    let c = client();
    assert_eq!(get(&c, addr, &[]).await, 200);
    for spoof in [
        [("x-forwarded-for", "198.51.100.1")],
        [("forwarded", "for=198.51.100.2")],
        [("x-real-ip", "198.51.100.3")],
    ] {
        assert_eq!(get(&c, addr, &spoof).await, 429, "{spoof:?}");
    }
}

#[tokio::test]
async fn x_forwarded_for_trusted_for_one_hop() {
    let addr = server(KeySource::forwarded(
        ProxyHeader::XForwardedFor,
        TrustedProxies::Hops(1),
    ))
    .await;
    let c = client();
    // The proxy (our loopback peer) appended the client's address last; what the client
    // wrote before it is ignored.
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "6.6.6.6, 203.0.113.1")]).await,
        200
    );
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "7.7.7.7, 203.0.113.1")]).await,
        429
    );
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "6.6.6.6, 203.0.113.2")]).await,
        200
    );
}

#[tokio::test]
async fn forwarded_trusted_for_two_hops() {
    let addr = server(KeySource::forwarded(
        ProxyHeader::Forwarded,
        TrustedProxies::Hops(2),
    ))
    .await;
    let c = client();
    let chain = |client: &str, forged: &str| {
        format!("for={forged}, for={client};proto=https, for=10.0.0.9")
    };
    assert_eq!(
        get(&c, addr, &[("forwarded", &chain("203.0.113.1", "1.1.1.1"))]).await,
        200
    );
    assert_eq!(
        get(&c, addr, &[("forwarded", &chain("203.0.113.1", "2.2.2.2"))]).await,
        429
    );
    assert_eq!(
        get(
            &c,
            addr,
            &[("forwarded", &chain("\"[2001:db8::1]:80\"", "1.1.1.1"))]
        )
        .await,
        200
    );
}

#[tokio::test]
async fn trusted_networks_only() {
    let loopback: IpNet = "127.0.0.0/8".parse().unwrap();
    let addr = server(KeySource::forwarded(
        ProxyHeader::XForwardedFor,
        TrustedProxies::Networks(vec![loopback, "10.0.0.0/8".parse().unwrap()]),
    ))
    .await;
    let c = client();
    assert_eq!(
        get(
            &c,
            addr,
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.1, 10.1.1.1")]
        )
        .await,
        200
    );
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "203.0.113.1")]).await,
        429
    );

    // A peer outside the trusted networks is the client, whatever it sends.
    let addr = server(KeySource::forwarded(
        ProxyHeader::XForwardedFor,
        TrustedProxies::Networks(vec!["10.0.0.0/8".parse().unwrap()]),
    ))
    .await;
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "203.0.113.1")]).await,
        200
    );
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "203.0.113.2")]).await,
        429
    );
}

#[tokio::test]
async fn ipv6_clients_are_grouped_by_prefix() {
    // Behind a trusted proxy, so that distinct IPv6 clients can be simulated.
    let key = |bits| {
        KeySource::forwarded(ProxyHeader::XForwardedFor, TrustedProxies::Hops(1)).ipv6_prefix(bits)
    };
    let c = client();
    let addr = server(key(64)).await;
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "2001:db8:0:1::a")]).await,
        200
    );
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "2001:db8:0:1:ffff::b")]).await,
        429,
        "same /64"
    );
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "2001:db8:0:2::a")]).await,
        200,
        "another /64"
    );
    let addr = server(key(128)).await;
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "2001:db8:0:1::a")]).await,
        200
    );
    assert_eq!(
        get(&c, addr, &[("x-forwarded-for", "2001:db8:0:1::b")]).await,
        200
    );
}

#[tokio::test]
async fn ipv6_loopback_server() {
    // Skipped only where the machine has no IPv6 loopback at all.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; the grouping is covered above");
        return;
    }
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("1 per minute")
        .on_breach(|_, request| {
            assert!(request.peer_addr().is_some_and(|a| a.is_ipv6()));
        })
        .build()
        .unwrap();
    let addr = serve_on("[::1]", routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(get(&c, addr, &[]).await, 200);
    assert_eq!(get(&c, addr, &[]).await, 429);
    let stats = limiter
        .limiter()
        .stats(
            &"1 per minute".parse().unwrap(),
            &limiter_core::Key::new(["::/64", "/a"]),
        )
        .await
        .unwrap();
    assert_eq!(stats.remaining, 0, "::1 counted as the /64 ::/64");
}
