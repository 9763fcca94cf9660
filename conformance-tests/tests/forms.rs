//! The other forms of `suite!`: an `Arc<dyn Storage>` with capabilities turned off, and
//! an expression that awaits an async constructor.

/// `arc:` form, with `clear_all` and expiry turned off (those two cases
/// report `NOT RUN` and check nothing).
mod shared_without_capabilities {
    use std::sync::Arc;

    use limiter_conformance::{Capabilities, ReferenceStorage};

    limiter_conformance::suite!(
        arc: Arc::new(ReferenceStorage::new()),
        Capabilities::ALL
            .without_clear_all()
            .without_expiry(),
    );
}

/// An async constructor, awaited inside the factory.
mod async_constructor {
    use limiter_conformance::ReferenceStorage;

    async fn connect() -> Result<ReferenceStorage, std::io::Error> {
        tokio::task::yield_now().await;
        Ok(ReferenceStorage::new())
    }

    limiter_conformance::suite!(connect().await.expect("connect"));
}
