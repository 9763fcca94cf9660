//! One table of policy cases (support/table.rs), run against the tower layer in a
//! real axum server and the actix-web middleware in a real actix-web server, both
//! on loopback ports: each must answer as the table says, so the two agree.
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod support;

use support::table::{cases, run};

#[tokio::test]
async fn both_adapters_answer_every_case_alike() {
    let mut failures = Vec::new();
    for case in cases() {
        let (axum_lines, axum_bad) = run(&case, |limiter| async move {
            support::serve(support::routes().layer(limiter.layer())).await
        })
        .await;
        let (actix_lines, actix_bad) = run(&case, support::actix::serve).await;
        println!("== {}", case.name);
        for (a, b) in axum_lines.iter().zip(&actix_lines) {
            let same = if a == b { "same" } else { "DIFFERENT" };
            println!("   axum:  {a}\n   actix: {b}   [{same}]");
            if a != b {
                failures.push(format!("{}: axum {a} / actix {b}", case.name));
            }
        }
        failures.extend(axum_bad.into_iter().map(|m| format!("axum: {m}")));
        failures.extend(actix_bad.into_iter().map(|m| format!("actix: {m}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
