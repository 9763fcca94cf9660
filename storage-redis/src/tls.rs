//! TLS for `rediss://`: rustls with the ring provider, behind the `tls` feature.

use fred::prelude::Config;

use crate::error::RedisError;
use crate::options::RedisOptions;

/// Sets up TLS on `out` as `config` asks.
#[cfg(feature = "tls")]
pub(crate) fn configure(out: &mut Config, config: &RedisOptions) -> Result<(), RedisError> {
    use fred::rustls::pki_types::pem::PemObject;
    use fred::rustls::pki_types::CertificateDer;
    use fred::rustls::{ClientConfig, RootCertStore};
    use fred::types::config::TlsConnector;
    use std::sync::Arc;

    let failed = |reason: String| RedisError::Tls { reason };
    let mut roots = RootCertStore::empty();
    match config.get_tls_ca_file() {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| failed(format!("cannot read CA file {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert
                    .map_err(|e| failed(format!("bad PEM in CA file {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| failed(format!("bad certificate in {}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(failed(format!(
                    "no certificate in CA file {}",
                    path.display()
                )));
            }
        }
        None => {
            let native = fred::rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A system certificate rustls cannot parse is skipped, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(failed(
                    "no trusted root certificates found on this system; set tls_ca_file".to_owned(),
                ));
            }
        }
    }
    // The ring provider explicitly, so that another rustls provider compiled into the
    // same program cannot make the choice ambiguous.
    let provider = Arc::new(fred::rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    out.tls = Some(TlsConnector::from(client).into());
    Ok(())
}

/// Without the `tls` feature, TLS is refused rather than silently skipped.
#[cfg(not(feature = "tls"))]
pub(crate) fn configure(_out: &mut Config, config: &RedisOptions) -> Result<(), RedisError> {
    Err(RedisError::TlsUnavailable {
        uri: config.target(),
    })
}
