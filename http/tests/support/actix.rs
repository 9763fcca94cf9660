//! The same routes as [`super::routes`], served by actix-web.

use std::net::SocketAddr;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use limiter_http::{HttpLimiter, RateLimitInfo};

/// `/a` (GET, POST), `/b`, `/c`, `/ping`, `/users/{id}`, `/login` (POST; 401 unless
/// `x-password: secret`) and `/info` (echoes the remaining budget), as in axum.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/a")
            .route(web::get().to(|| async { "a" }))
            .route(web::post().to(|| async { "a" })),
    )
    .service(web::resource("/b").route(web::get().to(|| async { "b" })))
    .service(web::resource("/c").route(web::get().to(|| async { "c" })))
    .service(web::resource("/ping").route(web::get().to(|| async { "PONG" })))
    .service(web::resource("/users/{id}").route(web::get().to(|| async { "user" })))
    .service(
        web::resource("/login").route(web::post().to(|req: HttpRequest| async move {
            if req
                .headers()
                .get("x-password")
                .is_some_and(|v| v == "secret")
            {
                HttpResponse::Ok().body("welcome")
            } else {
                HttpResponse::Unauthorized().body("no")
            }
        })),
    )
    .service(
        web::resource("/info").route(
            web::get().to(|info: RateLimitInfo| async move { super::remaining_text(&info) }),
        ),
    );
}

/// Serves [`routes`] wrapped in `limiter`'s middleware on `127.0.0.1:0`, with one
/// worker; returns the address. The server lives as long as the test's runtime.
pub async fn serve(limiter: HttpLimiter) -> SocketAddr {
    let server = HttpServer::new(move || {
        App::new()
            .wrap(limiter.actix_middleware())
            .configure(routes)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(0)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    addr
}
