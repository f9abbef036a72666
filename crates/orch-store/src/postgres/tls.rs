//! TLS to the database, as libpq's `sslmode` says: `disable` (the default
//! for a loopback host or a Unix socket), `prefer` (the default elsewhere:
//! encrypted when the server offers it, plain otherwise), `require`
//! (encrypted or no connection), `verify-ca` (encrypted, and the server's
//! certificate chains to a trusted root, whatever name it carries) and
//! `verify-full` (`verify-ca`, and the certificate names the URL's host).
//! The roots are the Mozilla set, or `sslrootcert=FILE`'s certificates
//! alone. As in libpq, `prefer` and `require` encrypt without checking who
//! the server is.
//! `sslcert=` and `sslkey=` give the client certificate a server may ask for.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    pub(crate) fn parse(v: &str) -> Result<TlsMode, String> {
        match v {
            "disable" => Ok(TlsMode::Disable),
            "prefer" => Ok(TlsMode::Prefer),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            other => Err(format!(
                "sslmode `{other}` is not one orch knows: disable, prefer, require, verify-ca, verify-full"
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// `disable` when every host is loopback (or a Unix socket): nothing
    /// crosses a network. `prefer` otherwise.
    pub(crate) fn default_for(config: &tokio_postgres::Config) -> TlsMode {
        let loopback = |h: &Host| match h {
            Host::Tcp(name) => {
                let name = name.trim_start_matches('[').trim_end_matches(']');
                name.eq_ignore_ascii_case("localhost")
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Host::Unix(_) => true,
        };
        let hosts = config.get_hosts();
        if !hosts.is_empty() && hosts.iter().all(loopback) {
            TlsMode::Disable
        } else {
            TlsMode::Prefer
        }
    }

    /// What the client does with the server's answer to its TLS request.
    pub(crate) fn client_mode(self) -> SslMode {
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }
}

/// `sslcert=` and `sslkey=`: the certificate (with its chain) and key this
/// client shows a server that asks for one.
#[derive(Debug, Clone)]
pub(crate) struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The TLS client for `mode` (none for `disable`).
pub(crate) fn connector(
    mode: TlsMode,
    root_cert: Option<&Path>,
    client: Option<&ClientCert>,
) -> Result<Option<MakeRustlsConnect>, String> {
    if client.is_some() && mode == TlsMode::Disable {
        return Err("sslcert and sslkey need TLS, which sslmode=disable turns off".into());
    }
    if root_cert.is_some() && !matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull) {
        return Err("sslrootcert is used by sslmode=verify-ca and verify-full only".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let builder =
        match mode {
            TlsMode::Disable => return Ok(None),
            TlsMode::Prefer | TlsMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient {
                    provider,
                    chain: None,
                })),
            TlsMode::VerifyCa => {
                let roots = Arc::new(roots(root_cert)?);
                let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("cannot set up TLS: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Lenient {
                        provider,
                        chain: Some(chain),
                    }))
            }
            TlsMode::VerifyFull => builder.with_root_certificates(roots(root_cert)?),
        };
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let (chain, key) = client_identity(c)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "cannot use sslcert {} with sslkey {}: {e}",
                    c.cert.display(),
                    c.key.display()
                )
            })?
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// Reads `sslcert` (PEM certificates, the client's first) and `sslkey` (a
/// PEM private key: PKCS#8, PKCS#1 or SEC1).
fn client_identity(
    c: &ClientCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        format!("cannot read the {what} of {}: {e}", path.display())
    };
    let chain = CertificateDer::pem_file_iter(&c.cert)
        .map_err(|e| bad("certificates", &c.cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificates", &c.cert, &e))?;
    if chain.is_empty() {
        return Err(bad(
            "certificates",
            &c.cert,
            &"sslcert holds no PEM certificate",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| bad("private key", &c.key, &e))?;
    Ok((chain, key))
}

/// The roots a server's certificate must chain to: `sslrootcert`'s
/// certificates alone, else the Mozilla set.
fn roots(root_cert: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let Some(path) = root_cert else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let bad = |e: &dyn std::fmt::Display| {
        format!(
            "cannot read the certificates of sslrootcert {}: {e}",
            path.display()
        )
    };
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"it holds no PEM certificate"));
    }
    Ok(roots)
}

/// Whether the connection failed in its TLS request or handshake (the
/// server refused TLS, or its certificate was not accepted): not a
/// network error. The client exposes no kind, only its words.
pub(crate) fn is_tls_error(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none() && e.to_string().starts_with("error performing TLS handshake")
}

/// The error with its causes ("error performing TLS handshake: server does
/// not support TLS"): the client's own words stop at the first.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The verifier of the modes that do not check everything (libpq's
/// meanings): `prefer` and `require` (`chain: None`) check the handshake's
/// signatures, not the certificate's issuer or name; `verify-ca` (the
/// webpki verifier of its roots) checks the chain as `verify-full` does
/// (trusted root, validity, signatures) and accepts only a name that does
/// not match the URL's host. The webpki verifier checks the name last,
/// after the chain, so its name error means the chain was good.
#[derive(Debug)]
struct Lenient {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
