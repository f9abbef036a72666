//! `sslcert=` and `sslkey=` in a PostgreSQL store's URL: the client shows
//! its certificate to a server that asks for one. The server here is a
//! stand-in on loopback that speaks PostgreSQL's TLS request, requires a
//! client certificate signed by a test CA (rustls), and then refuses the
//! login naming what it saw, so no real server needs reconfiguring. The
//! certificates are made by the `openssl` command for each run.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA, a server certificate and a client certificate signed by it.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=orch test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        let mut req = vec!["req", "-subj"];
        let subject = format!("/CN=orch test {who}");
        req.push(&subject);
        req.extend(ec);
        let (key, csr, pem) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
        );
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "leaf.ext",
                "-out",
                &pem,
            ],
        );
    }
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What the stand-in saw of one connection: the client's certificate
/// (`None`: the handshake failed, with its error).
type Seen = Result<Vec<u8>, String>;

/// Serves connections until the test ends; reports each one.
fn stand_in(dir: &Path) -> (u16, mpsc::Receiver<Seen>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(&dir.join("ca.pem")) {
        roots.add(c).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            pem_certs(&dir.join("server.pem")),
            PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap(),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let _ = tx.send(serve_one(tcp, config.clone()));
        }
    });
    (port, rx)
}

/// PostgreSQL's TLS request (8 bytes) answered `S`, the handshake, the
/// startup message read, then a FATAL error response naming the
/// certificate's size: a server error, which the client does not retry.
fn serve_one(mut tcp: std::net::TcpStream, config: Arc<rustls::ServerConfig>) -> Seen {
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut request = [0u8; 8];
    tcp.read_exact(&mut request).map_err(|e| e.to_string())?;
    tcp.write_all(b"S").map_err(|e| e.to_string())?;
    let conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    let cert = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("no client certificate")?;
    let mut len = [0u8; 4];
    tls.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut startup = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    tls.read_exact(&mut startup).map_err(|e| e.to_string())?;
    let mut fields = Vec::new();
    for (code, text) in [
        (b'S', "FATAL".to_string()),
        (b'V', "FATAL".to_string()),
        (b'C', "28000".to_string()),
        (
            b'M',
            format!("stand-in saw a client certificate of {} bytes", cert.len()),
        ),
    ] {
        fields.push(code);
        fields.extend(text.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut msg = vec![b'E'];
    msg.extend(((fields.len() + 4) as u32).to_be_bytes());
    msg.extend(fields);
    tls.write_all(&msg).map_err(|e| e.to_string())?;
    let _ = tls.flush();
    Ok(cert)
}

fn history(dir: &Path, url: &str) -> (Option<i32>, String) {
    let out = Command::new(ORCH)
        .args(["history", "--store", url])
        .current_dir(dir)
        .env_remove("ORCH_STORE")
        .output()
        .expect("orch history");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orch-client-cert-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_client_shows_its_certificate_to_a_server_that_asks_for_one() {
    let dir = scratch("shown");
    certificates(&dir);
    let (port, seen) = stand_in(&dir);
    let url = |extra: &str| {
        format!("postgres://orch@127.0.0.1:{port}/test?sslmode=require&connect_timeout=10{extra}")
    };
    let with_cert = format!(
        "&sslcert={}&sslkey={}",
        dir.join("client.pem").display(),
        dir.join("client.key").display()
    );

    let (code, out) = history(&dir, &url(&with_cert));
    assert_eq!(code, Some(2), "{out}");
    let client = pem_certs(&dir.join("client.pem"))[0].to_vec();
    let got = seen
        .recv_timeout(Duration::from_secs(30))
        .expect("a connection");
    assert_eq!(
        got.as_deref(),
        Ok(&client[..]),
        "the stand-in saw the client's certificate"
    );
    assert!(
        out.contains(&format!(
            "stand-in saw a client certificate of {} bytes",
            client.len()
        )),
        "past the handshake, the login is what failed: {out}"
    );

    // Without one, the server's demand fails the handshake.
    let (code, out) = history(&dir, &url(""));
    assert_eq!(code, Some(2), "{out}");
    // TLS 1.3: the client has finished its half when the server's alert
    // comes, so it reads as a failure to communicate, with the cause.
    assert!(out.contains("CertificateRequired"), "{out}");
    let got = seen
        .recv_timeout(Duration::from_secs(30))
        .expect("a connection");
    assert!(got.is_err(), "{got:?}");

    // Half a pair, or a key that is not one, is refused before connecting.
    let (code, out) = history(
        &dir,
        &url(&format!("&sslcert={}", dir.join("client.pem").display())),
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("sslcert and sslkey go together"), "{out}");
    let (code, out) = history(
        &dir,
        &url(&format!(
            "&sslcert={}&sslkey={}",
            dir.join("client.pem").display(),
            dir.join("client.pem").display()
        )),
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("cannot read the private key of"), "{out}");
    assert!(seen.try_recv().is_err(), "no connection was made for those");
    let _ = std::fs::remove_dir_all(&dir);
}
