//! What only the actix-web adapter has: middleware on a resource or a scope.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod support;

use actix_web::{web, App, HttpServer};
use limiter_http::{HttpLimiter, Limits, RateLimitInfo, Route};
use support::*;

#[tokio::test]
async fn resource_and_scope_middleware() {
    let (core, _clock) = memory_limiter();
    let limiter = HttpLimiter::builder(core)
        .default_limits("2 per minute")
        .build()
        .unwrap();
    let slow = limiter
        .actix_middleware_for(Route::limits(Limits::new("1 per day")))
        .unwrap();
    let defaults = limiter.actix_middleware();
    let server = HttpServer::new(move || {
        App::new()
            .service(
                web::scope("/api")
                    .wrap(defaults.clone())
                    .route("/users/{id}", web::get().to(|| async { "user" })),
            )
            .service(
                web::resource("/slow")
                    .wrap(slow.clone())
                    .route(web::get().to(|| async { "24" })),
            )
            .route(
                "/free",
                web::get().to(|info: RateLimitInfo| async move { remaining_text(&info) }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    let c = client();
    // The scope's pattern, prefix included, is the route: one budget for all ids.
    assert_eq!(status(&c, addr, "GET", "/api/users/1").await, 200);
    assert_eq!(status(&c, addr, "GET", "/api/users/2").await, 200);
    assert_eq!(status(&c, addr, "GET", "/api/users/3").await, 429);
    // The resource's own rule replaces the defaults.
    assert_eq!(statuses(&c, addr, "/slow", 2).await, [200, 429]);
    // No middleware: not limited, and the extractor says so.
    let free = send(&c, addr, "GET", "/free", &[]).await;
    assert_eq!(free.text().await.unwrap(), "unlimited");
}
