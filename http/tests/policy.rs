//! Every policy feature, on a real server on a loopback port, driven by a real client.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Response, StatusCode};
use limiter_core::{parse_many, RateLimit};
use limiter_http::{BuildError, HttpLimiter, KeySource, Limits, RejectionBody, Route};
use support::*;

#[tokio::test]
async fn defaults_apply_per_route_and_route_limits_replace_them() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("2 per minute")
        .route("/b", Route::limits(Limits::new("1 per minute")))
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    // Each route has its own default budget.
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 429]);
    assert_eq!(statuses(&c, addr, "/c", 3).await, [200, 200, 429]);
    // /b has its own limit instead of the defaults.
    assert_eq!(statuses(&c, addr, "/b", 2).await, [200, 429]);
}

#[tokio::test]
async fn route_limits_can_add_to_the_defaults_all_or_nothing() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("3 per minute")
        .route(
            "/a",
            Route::limits(Limits::new("1 per second")).with_defaults(),
        )
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(statuses(&c, addr, "/a", 2).await, [200, 429]);
    // The rejected second request did not spend the minute budget: two remain.
    let stats = limiter
        .limiter()
        .stats(
            &"3 per minute".parse().unwrap(),
            &key_for("127.0.0.1", "/a"),
        )
        .await
        .unwrap();
    assert_eq!(stats.remaining, 2);
}

fn key_for(client: &str, route: &str) -> limiter_core::Key {
    limiter_core::Key::new([client, route])
}

#[tokio::test]
async fn application_limits_are_shared_by_all_routes() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .application_limits("3 per minute")
        .default_limits("10 per minute")
        .route("/ping", Route::exempt())
        .route("/c", Route::exempt_from_defaults())
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(status(&c, addr, "GET", "/a").await, 200);
    assert_eq!(status(&c, addr, "GET", "/b").await, 200);
    // Exempt from defaults only: application limits still count.
    assert_eq!(status(&c, addr, "GET", "/c").await, 200);
    assert_eq!(status(&c, addr, "GET", "/a").await, 429);
    assert_eq!(status(&c, addr, "GET", "/c").await, 429);
    // Exempt: nothing applies.
    assert_eq!(statuses(&c, addr, "/ping", 5).await, [200; 5]);
}

#[tokio::test]
async fn application_rejection_counts_nothing_on_the_route() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .application_limits("1 per minute")
        .default_limits("5 per minute")
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 429, 429]);
    let stats = limiter
        .limiter()
        .stats(
            &"5 per minute".parse().unwrap(),
            &key_for("127.0.0.1", "/a"),
        )
        .await
        .unwrap();
    assert_eq!(stats.remaining, 4, "rejections spent the route's budget");
}

#[tokio::test]
async fn shared_scope_is_one_budget_across_routes() {
    let (limiter, _clock) = memory_limiter();
    let shared = Limits::new("3 per minute").shared("reads");
    let limiter = HttpLimiter::builder(limiter)
        .route("/a", Route::limits(shared.clone()))
        .route("/b", Route::limits(shared))
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(statuses(&c, addr, "/a", 2).await, [200, 200]);
    assert_eq!(statuses(&c, addr, "/b", 2).await, [200, 429]);
    assert_eq!(status(&c, addr, "GET", "/a").await, 429);
}

#[tokio::test]
async fn per_method_limits_and_method_filters() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .route(
            "/a",
            Route::limits(Limits::new("1 per minute").per_method()),
        )
        .route(
            "/login",
            Route::limits(Limits::new("1 per minute").methods([Method::GET])),
        )
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    // GET and POST have separate budgets.
    assert_eq!(status(&c, addr, "GET", "/a").await, 200);
    assert_eq!(status(&c, addr, "POST", "/a").await, 200);
    assert_eq!(status(&c, addr, "GET", "/a").await, 429);
    assert_eq!(status(&c, addr, "POST", "/a").await, 429);
    // POST is not filtered in: never limited.
    for _ in 0..3 {
        assert_eq!(status(&c, addr, "POST", "/login").await, 401);
    }
}

#[tokio::test]
async fn dynamic_limits_per_plan() {
    let (limiter, _clock) = memory_limiter();
    let free: Arc<[RateLimit]> = parse_many("1 per minute").unwrap().into();
    let pro: Arc<[RateLimit]> = parse_many("3 per minute").unwrap().into();
    let per_plan = Limits::dynamic(move |request| match request.header("x-plan") {
        Some("pro") => Some(pro.clone()),
        Some("none") => None,
        _ => Some(free.clone()),
    })
    .key(KeySource::header("x-api-key"));
    let limiter = HttpLimiter::builder(limiter)
        .default_limits(per_plan)
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    let go = |key: &'static str, plan: &'static str| {
        let c = c.clone();
        async move {
            send(
                &c,
                addr,
                "GET",
                "/a",
                &[("x-api-key", key), ("x-plan", plan)],
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!([go("k1", "free").await, go("k1", "free").await], [200, 429]);
    assert_eq!(
        [
            go("k2", "pro").await,
            go("k2", "pro").await,
            go("k2", "pro").await,
            go("k2", "pro").await
        ],
        [200, 200, 200, 429]
    );
    // No limits for this request.
    assert_eq!([go("k3", "none").await, go("k3", "none").await], [200, 200]);
    // Without the header, the key yields nothing: the limit is skipped.
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 200]);
}

#[tokio::test]
async fn request_filter_exempt_when_and_switch() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits(
            Limits::new("1 per minute").exempt_when(|r| r.header("x-internal").is_some()),
        )
        .request_filter(|r| r.header("x-allow") == Some("yes"))
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(status(&c, addr, "GET", "/a").await, 200);
    assert_eq!(status(&c, addr, "GET", "/a").await, 429);
    for headers in [[("x-allow", "yes")], [("x-internal", "1")]] {
        let response = send(&c, addr, "GET", "/a", &headers).await;
        assert_eq!(response.status(), 200, "{headers:?}");
    }
    limiter.set_enabled(false);
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 200]);
    limiter.set_enabled(true);
    assert_eq!(status(&c, addr, "GET", "/a").await, 429);
}

#[tokio::test]
async fn costs_fixed_and_computed() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .route("/a", Route::limits(Limits::new("5 per minute").cost(2)))
        .route(
            "/b",
            Route::limits(
                Limits::new("5 per minute")
                    .cost_fn(|r| r.header("x-cost").and_then(|v| v.parse().ok()).unwrap_or(1)),
            ),
        )
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 429]);
    let cost = |n: &'static str| {
        let c = c.clone();
        async move {
            send(&c, addr, "GET", "/b", &[("x-cost", n)])
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(cost("4").await, 200);
    assert_eq!(cost("2").await, 429);
    assert_eq!(cost("0").await, 200, "a computed cost of 0 is free");
    assert_eq!(cost("1").await, 200);
    // A cost above the limit can never pass.
    assert_eq!(cost("6").await, 429);
}

#[tokio::test]
async fn key_prefix_separates_applications_on_one_storage() {
    let (core, _clock) = memory_limiter();
    let one = HttpLimiter::builder(core.clone())
        .default_limits("1 per minute")
        .key_prefix("one")
        .build()
        .unwrap();
    let two = HttpLimiter::builder(core)
        .default_limits("1 per minute")
        .key_prefix("two")
        .build()
        .unwrap();
    let a = serve(routes().layer(one.layer())).await;
    let b = serve(routes().layer(two.layer())).await;
    let c = client();
    assert_eq!(status(&c, a, "GET", "/a").await, 200);
    assert_eq!(status(&c, b, "GET", "/a").await, 200);
    assert_eq!(status(&c, a, "GET", "/a").await, 429);
}

#[tokio::test]
async fn conditional_deduction_counts_only_failed_logins() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .route(
            "/login",
            Route::limits(
                Limits::new("2 per minute").deduct_when(|r| r.status() == StatusCode::UNAUTHORIZED),
            ),
        )
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    let login = |password: &'static str| {
        let c = c.clone();
        async move {
            send(&c, addr, "POST", "/login", &[("x-password", password)])
                .await
                .status()
                .as_u16()
        }
    };
    for _ in 0..3 {
        assert_eq!(login("secret").await, 200, "successes cost nothing");
    }
    assert_eq!(login("wrong").await, 401);
    assert_eq!(login("wrong").await, 401);
    assert_eq!(login("wrong").await, 429);
    assert_eq!(
        login("secret").await,
        429,
        "the budget is spent for everyone"
    );
}

#[tokio::test]
async fn conditional_deduction_under_concurrency_admits_at_most_the_budget() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .route(
            "/login",
            Route::limits(
                Limits::new("5 per minute").deduct_when(|r| r.status() == StatusCode::UNAUTHORIZED),
            ),
        )
        .build()
        .unwrap();
    let slow_login = axum::Router::new().route(
        "/login",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            StatusCode::UNAUTHORIZED
        }),
    );
    let addr = serve(slow_login.layer(limiter.layer())).await;
    let c = client();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { status(&c, addr, "POST", "/login").await })
        })
        .collect();
    let mut seen = 0;
    for task in tasks {
        if task.await.unwrap() == 401 {
            seen += 1;
        }
    }
    assert!(
        seen <= 5,
        "{seen} failed logins reached the handler, budget 5"
    );
    assert!(seen >= 1);
}

#[tokio::test]
async fn on_breach_and_custom_and_problem_responses() {
    let breaches = Arc::new(AtomicUsize::new(0));
    let seen = breaches.clone();
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("1 per minute")
        .on_breach(move |decision, request| {
            assert!(!decision.is_allowed());
            assert_eq!(request.route(), Some("/a"));
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .rejection_body(RejectionBody::custom(|decision, request| {
            let mut response = Response::new(format!("{} on {}", decision.limit(), request.path()));
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response
        }))
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(status(&c, addr, "GET", "/a").await, 200);
    let response = send(&c, addr, "GET", "/a", &[]).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.text().await.unwrap(), "1 per 1 minute on /a");
    assert_eq!(breaches.load(Ordering::SeqCst), 1);

    let (limiter, _clock) = memory_limiter();
    let problem = HttpLimiter::builder(limiter)
        .default_limits("1 per minute")
        .rejection_body(RejectionBody::Problem)
        .build()
        .unwrap();
    let addr = serve(routes().layer(problem.layer())).await;
    assert_eq!(status(&c, addr, "GET", "/a").await, 200);
    let response = send(&c, addr, "GET", "/a", &[]).await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.starts_with(
            "{\"type\":\"about:blank\",\"title\":\"Too Many Requests\",\"status\":429"
        ),
        "{body}"
    );
    assert!(body.contains("\"limit\":\"1 per 1 minute\""), "{body}");
    assert!(body.contains("\"retry_after\":60"), "{body}");
}

#[tokio::test]
async fn route_patterns_and_route_layer() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("5 per minute")
        .route("/users/{id}", Route::limits(Limits::new("2 per minute")))
        .build()
        .unwrap();
    // route_layer: only matched routes are limited, and unmatched paths are not counted.
    let addr = serve(routes().route_layer(limiter.layer())).await;
    let c = client();
    // One budget for the pattern, whatever the id.
    assert_eq!(status(&c, addr, "GET", "/users/1").await, 200);
    assert_eq!(status(&c, addr, "GET", "/users/2").await, 200);
    assert_eq!(status(&c, addr, "GET", "/users/3").await, 429);
    assert_eq!(statuses(&c, addr, "/nowhere", 7).await, [404; 7]);
}

#[tokio::test]
async fn malformed_limits_fail_when_built() {
    let (limiter, _clock) = memory_limiter();
    let err = HttpLimiter::builder(limiter.clone())
        .default_limits("2 per minute")
        .route("/slow", Route::limits(Limits::new("1 per fortnight")))
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Limit { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with("route \"/slow\": invalid rate limit"),
        "{text}"
    );
    assert!(text.contains("fortnight"), "{text}");

    let err = HttpLimiter::builder(limiter.clone())
        .default_limits(Limits::new("1 per second").cost(0))
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Invalid { .. }), "{err}");
    let err = HttpLimiter::builder(limiter)
        .key(KeySource::peer().ipv6_prefix(200))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("128"), "{err}");
}

#[tokio::test]
async fn meta_limits_shut_out_a_client_that_keeps_breaching() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("1 per minute")
        .meta_limits("2 per hour")
        .route("/ping", Route::exempt())
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    // Two breaches on /a...
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 429, 429]);
    // ...and /b, whose own budget is untouched, is refused too.
    let response = send(&c, addr, "GET", "/b", &[]).await;
    assert_eq!(response.status(), 429);
    assert!(response.text().await.unwrap().contains("2 per 1 hour"));
    // Exempt routes stay open.
    assert_eq!(status(&c, addr, "GET", "/ping").await, 200);
    let meta_key = limiter_core::Key::new(["127.0.0.1", "~meta"]);
    let stats = limiter
        .limiter()
        .stats(&"2 per hour".parse().unwrap(), &meta_key)
        .await
        .unwrap();
    assert_eq!(stats.remaining, 0);
}

#[tokio::test]
async fn per_route_layers_in_axum() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("2 per minute")
        .application_limits("100 per minute")
        .build()
        .unwrap();
    let slow = limiter
        .layer_for(Route::limits(Limits::new("1 per day")))
        .unwrap();
    let app = axum::Router::new()
        .route("/fast", axum::routing::get(|| async { "42" }))
        .layer(limiter.layer())
        .route("/slow", axum::routing::get(|| async { "24" }).layer(slow))
        .route("/ping", axum::routing::get(|| async { "PONG" }));
    let addr = serve(app).await;
    let c = client();
    assert_eq!(statuses(&c, addr, "/fast", 3).await, [200, 200, 429]);
    assert_eq!(statuses(&c, addr, "/slow", 2).await, [200, 429]);
    assert_eq!(statuses(&c, addr, "/ping", 4).await, [200; 4]);
    // The application limit counted /fast and /slow alike: 4 of 100 spent.
    let app_key = limiter_core::Key::new(["127.0.0.1", "~app"]);
    let stats = limiter
        .limiter()
        .stats(&"100 per minute".parse().unwrap(), &app_key)
        .await
        .unwrap();
    assert_eq!(stats.remaining, 97);
    assert!(limiter
        .layer_for(Route::limits(Limits::new("1 per eon")))
        .is_err());
}

#[tokio::test]
async fn defaults_apply_to_methods_the_route_limits_leave_out() {
    let (limiter, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(limiter)
        .default_limits("2 per minute")
        .route(
            "/a",
            Route::limits(Limits::new("1 per minute").methods([Method::POST])),
        )
        .build()
        .unwrap();
    let addr = serve(routes().layer(limiter.layer())).await;
    let c = client();
    assert_eq!(status(&c, addr, "POST", "/a").await, 200);
    assert_eq!(status(&c, addr, "POST", "/a").await, 429);
    // GET is left out by the route's limits: the defaults apply.
    assert_eq!(statuses(&c, addr, "/a", 3).await, [200, 200, 429]);
}
