//! TLS trust for one TrueConf server: reads the `ssl_certificate` PEM file and builds a
//! ureq agent whose rustls verifier pins those certificates, or chains to them as roots.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};
use ureq::Agent;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter, time,
};

/// A certificate file larger than this is refused unparsed (a whole public CA bundle is
/// about 0.2 MiB).
const MAX_PEM_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads every certificate from a PEM file. Err is a short human reason, e.g.
/// "cannot be read: No such file or directory (os error 2)", "holds no PEM certificate",
/// "is not valid PEM: ...". Sections other than CERTIFICATE (a private key, say) are skipped.
/// Never panics.
pub(crate) fn load_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable = |e: io::Error| format!("cannot be read: {e}");
    let file = File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    if meta.len() > MAX_PEM_FILE_BYTES {
        return Err("is too large for a certificate file".to_owned());
    }
    let mut certs = Vec::new();
    // `take` bounds the read even if the file grows after the size check.
    for item in CertificateDer::pem_reader_iter(file.take(MAX_PEM_FILE_BYTES)) {
        certs.push(item.map_err(pem_reason)?);
    }
    if certs.is_empty() {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(certs)
}

/// A short reason for a PEM parse error that quotes nothing from the file.
fn pem_reason(e: pem::Error) -> String {
    let reason = match e {
        pem::Error::Io(e) => return format!("cannot be read: {e}"),
        pem::Error::NoItemsFound => "holds no PEM certificate",
        pem::Error::MissingSectionEnd { .. } => "is not valid PEM: a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "is not valid PEM: a malformed BEGIN line",
        pem::Error::Base64Decode(_) => "is not valid PEM: bad base64 in a section",
        _ => "is not valid PEM",
    };
    reason.to_owned()
}

/// An agent for one TrueConf server whose TLS trusts exactly `certs`:
/// the presented end-entity certificate is accepted if it is byte-for-byte equal to one of
/// `certs` (pinned: the server's own self-signed cert, even one with CA:TRUE, even if its
/// names do not match the host we dialled); otherwise it must chain to one of `certs` used as
/// roots with normal webpki verification including the server name (IP or DNS).
/// Handshake signatures (TLS 1.2 and 1.3) are always verified with the ring provider.
///
/// `config` supplies timeouts, buffer sizes and pooling; its `tls_config` is ignored and
/// its proxy must be None (this connector chain has no proxy support). Plain `http://`
/// URLs go over bare TCP. Certificate failures surface as `ureq::Error::Rustls(..)`.
pub(crate) fn pinned_agent(
    config: Config,
    certs: Vec<CertificateDer<'static>>,
    resolver: super::Resolve,
) -> Agent {
    let tls = PinnedTlsConnector {
        client: client_config(certs),
    };
    let connector = ().chain(TcpConnector::default()).chain(tls);
    Agent::with_parts(config, connector, resolver)
}

/// The rustls client settings for `certs`. Err only if the ring provider cannot do the
/// default protocol versions; the connector then reports it on every https request.
fn client_config(certs: Vec<CertificateDer<'static>>) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(certs.iter().cloned());
    log::debug!("TLS trust: {added} certificate(s) usable as roots, {ignored} not");
    let roots = if store.is_empty() {
        None
    } else {
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .map_err(|_| log::debug!("TLS trust: no root verifier, pinning only"))
            .ok()
    };
    let verifier = PinnedVerifier {
        pinned: certs,
        roots,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts an end-entity certificate equal to one of `pinned`, or else one that webpki
/// chains to them (name included). Signatures always go through `algorithms`.
struct PinnedVerifier {
    pinned: Vec<CertificateDer<'static>>,
    /// webpki over `pinned` as roots; None when none of them can be a trust anchor.
    roots: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PinnedVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedVerifier")
            .field("pinned", &self.pinned.len())
            .field("roots", &self.roots.is_some())
            .finish()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            log::debug!("TLS: server certificate matches a pinned one");
            return Ok(ServerCertVerified::assertion());
        }
        let verdict = match &self.roots {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        if verdict.is_err() {
            log::debug!("TLS: server certificate neither pinned nor chained to the file");
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Wraps the TCP transport in rustls for https URLs; passes http ones through untouched.
struct PinnedTlsConnector {
    client: Result<Arc<ClientConfig>, rustls::Error>,
}

impl fmt::Debug for PinnedTlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedTlsConnector").finish_non_exhaustive()
    }
}

impl<In: Transport> Connector<In> for PinnedTlsConnector {
    type Out = Either<In, PinnedTlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        // Nothing to wrap: ureq then reports ConnectionFailed.
        let Some(inner) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || inner.is_tls() {
            return Ok(Some(Either::A(inner)));
        }
        let client = self.client.clone()?;
        let mut conn = ClientConnection::new(client, server_name(details.uri)?)?;
        let inner: Box<dyn Transport> = Box::new(inner);
        let mut sock = TransportAdapter::new(inner, details.current_time.clone());
        // The connect budget started before the TCP connect: charge that time too.
        sock.set_timeout(remaining(
            details.timeout,
            details.now,
            (details.current_time)(),
        ));
        conn.complete_io(&mut sock).map_err(lift_io_error)?;
        if conn.is_handshaking() {
            let cut = io::Error::new(io::ErrorKind::UnexpectedEof, "TLS handshake cut short");
            return Err(ureq::Error::Io(cut));
        }
        log::debug!("TLS: handshake done");
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        let stream = StreamOwned::new(conn, sock);
        Ok(Some(Either::B(PinnedTlsTransport { buffers, stream })))
    }
}

/// The TLS server name for the URL's host: an IP address or a DNS name.
fn server_name(uri: &Uri) -> Result<ServerName<'static>, ureq::Error> {
    let host = uri.host().ok_or(ureq::Error::Tls("the URL has no host"))?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare)
        .map(|name| name.to_owned())
        .map_err(|_| ureq::Error::Tls("the host is not a valid TLS server name"))
}

/// `timeout` less the time spent since `since` (when its budget started).
fn remaining(mut timeout: NextTimeout, since: time::Instant, now: time::Instant) -> NextTimeout {
    if let (time::Duration::Exact(budget), time::Instant::Exact(start), time::Instant::Exact(now)) =
        (timeout.after, since, now)
    {
        let spent = now.saturating_duration_since(start);
        timeout.after = time::Duration::Exact(budget.saturating_sub(spent));
    }
    timeout
}

/// rustls reports its own errors inside io::Error; lift them to `ureq::Error::Rustls` so
/// callers can tell "certificate not trusted" from network trouble. Wrapped ureq errors
/// (timeouts) are unwrapped by ureq's own conversion.
fn lift_io_error(e: io::Error) -> ureq::Error {
    if !e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return ureq::Error::from(e);
    }
    let kind = e.kind();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<rustls::Error>())
    {
        Some(Ok(tls)) => ureq::Error::Rustls(*tls),
        Some(Err(other)) => ureq::Error::Io(io::Error::new(kind, other)),
        None => ureq::Error::Io(kind.into()),
    }
}

/// An established TLS session over the chained transport; pooled by ureq like any other.
struct PinnedTlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for PinnedTlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedTlsTransport").finish_non_exhaustive()
    }
}

impl Transport for PinnedTlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // Passed on unchanged: the TCP transport applies the per-write limit itself.
        self.stream.sock.set_timeout(timeout);
        let Some(output) = self.buffers.output().get(..amount) else {
            let bad = io::Error::new(io::ErrorKind::InvalidInput, "output beyond the buffer");
            return Err(ureq::Error::Io(bad));
        };
        self.stream.write_all(output).map_err(lift_io_error)?;
        self.stream.flush().map_err(lift_io_error)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input).map_err(lift_io_error)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.sock.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::thread::JoinHandle;
    use std::time::Duration;

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use rustls::{ServerConfig, ServerConnection, SupportedProtocolVersion};

    /// Upper bound for any test socket wait; nothing here sleeps.
    const DEADLINE: Duration = Duration::from_secs(10);

    /// A generated certificate with its key.
    struct Made {
        der: CertificateDer<'static>,
        pem: String,
        key: KeyPair,
    }

    fn params(common_name: &str, sans: &[&str], is_ca: IsCa) -> CertificateParams {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("certificate params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = is_ca;
        params
    }

    fn self_signed(common_name: &str, sans: &[&str], is_ca: IsCa) -> Made {
        let key = KeyPair::generate().expect("key pair");
        let cert = params(common_name, sans, is_ca)
            .self_signed(&key)
            .expect("self-signed certificate");
        Made {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        }
    }

    /// A private CA (CA:TRUE) and a CA:FALSE leaf it signed for `leaf_sans`.
    fn ca_and_leaf(leaf_sans: &[&str]) -> (Made, Made) {
        let ca = self_signed("Test CA", &[], IsCa::Ca(BasicConstraints::Unconstrained));
        let ca_params = params("Test CA", &[], IsCa::Ca(BasicConstraints::Unconstrained));
        let issuer = Issuer::from_params(&ca_params, &ca.key);
        let key = KeyPair::generate().expect("key pair");
        let cert = params("TrueConf leaf", leaf_sans, IsCa::ExplicitNoCa)
            .signed_by(&key, &issuer)
            .expect("CA-signed certificate");
        let leaf = Made {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        };
        (ca, leaf)
    }

    /// Always presents one chain, signed with a key that need not match it.
    #[derive(Debug)]
    struct FixedCert(Arc<CertifiedKey>);

    impl ResolvesServerCert for FixedCert {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    fn server_config(
        chain: Vec<CertificateDer<'static>>,
        key: &KeyPair,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = provider
            .key_provider
            .load_private_key(der)
            .expect("signing key");
        let resolver = FixedCert(Arc::new(CertifiedKey::new(chain, signer)));
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        Arc::new(config)
    }

    fn tls_server(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Arc<ServerConfig> {
        server_config(chain, key, rustls::DEFAULT_VERSIONS)
    }

    /// Accepts one connection on 127.0.0.1 and answers `requests` HTTP/1.1 requests on it
    /// (over TLS when `tls` is set); the last answer says `Connection: close`.
    fn serve(
        tls: Option<Arc<ServerConfig>>,
        requests: usize,
    ) -> (u16, JoinHandle<Result<(), String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let handle = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
            tcp.set_read_timeout(Some(DEADLINE))
                .map_err(|e| e.to_string())?;
            tcp.set_write_timeout(Some(DEADLINE))
                .map_err(|e| e.to_string())?;
            let Some(config) = tls else {
                return answer(tcp, requests);
            };
            let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
            let mut stream = StreamOwned::new(conn, tcp);
            answer(&mut stream, requests)?;
            stream.conn.send_close_notify();
            // The client may already be gone; the answers were delivered either way.
            let _ = stream.conn.complete_io(&mut stream.sock);
            Ok(())
        });
        (port, handle)
    }

    fn answer(mut stream: impl Read + Write, requests: usize) -> Result<(), String> {
        for n in 1..=requests {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).map_err(|e| e.to_string())? == 0 {
                    return Err("client left before the request ended".to_owned());
                }
                head.push(byte[0]);
            }
            let close = if n == requests {
                "Connection: close\r\n"
            } else {
                ""
            };
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{close}\r\nok");
            stream
                .write_all(reply.as_bytes())
                .map_err(|e| e.to_string())?;
            stream.flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn test_agent(certs: Vec<CertificateDer<'static>>, timeout: Duration) -> Agent {
        let config = Config::builder()
            .timeout_global(Some(timeout))
            .proxy(None)
            .build();
        pinned_agent(config, certs, super::super::Resolve::default())
    }

    fn fetch(agent: &Agent, url: &str) -> Result<String, ureq::Error> {
        let mut response = agent.get(url).call()?;
        response.body_mut().read_to_string()
    }

    /// Serves `server` once over TLS and fetches from it trusting `trusted`.
    fn fetch_tls(
        server: Arc<ServerConfig>,
        trusted: Vec<CertificateDer<'static>>,
    ) -> Result<String, ureq::Error> {
        let (port, handle) = serve(Some(server), 1);
        let result = fetch(
            &test_agent(trusted, DEADLINE),
            &format!("https://127.0.0.1:{port}/"),
        );
        // Bounded by the server's socket timeouts; its own verdict is not the subject here.
        let _ = handle.join();
        result
    }

    fn assert_certificate_rejected(result: Result<String, ureq::Error>) {
        match result {
            Err(ureq::Error::Rustls(rustls::Error::InvalidCertificate(_))) => {}
            other => panic!("expected Rustls(InvalidCertificate), got {other:?}"),
        }
    }

    #[test]
    fn leaf_signed_by_the_file_ca_is_trusted() {
        let (ca, leaf) = ca_and_leaf(&["127.0.0.1"]);
        let server = tls_server(vec![leaf.der.clone()], &leaf.key);
        assert_eq!(fetch_tls(server, vec![ca.der]).expect("request"), "ok");
    }

    #[test]
    fn own_self_signed_ca_true_certificate_is_pinned_on_tls13_and_tls12() {
        let cert = self_signed(
            "TrueConf",
            &["127.0.0.1"],
            IsCa::Ca(BasicConstraints::Unconstrained),
        );
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let server = server_config(vec![cert.der.clone()], &cert.key, &[version]);
            let body = fetch_tls(server, vec![cert.der.clone()]).expect("request");
            assert_eq!(body, "ok", "{version:?}");
        }
    }

    #[test]
    fn pinned_certificate_needs_no_matching_name() {
        let cert = self_signed("TrueConf", &["other.example"], IsCa::ExplicitNoCa);
        let server = tls_server(vec![cert.der.clone()], &cert.key);
        assert_eq!(fetch_tls(server, vec![cert.der]).expect("request"), "ok");
    }

    #[test]
    fn unrelated_certificate_is_rejected() {
        let presented = self_signed(
            "Server X",
            &["127.0.0.1"],
            IsCa::Ca(BasicConstraints::Unconstrained),
        );
        let trusted = self_signed(
            "Server Y",
            &["127.0.0.1"],
            IsCa::Ca(BasicConstraints::Unconstrained),
        );
        let server = tls_server(vec![presented.der.clone()], &presented.key);
        assert_certificate_rejected(fetch_tls(server, vec![trusted.der]));
    }

    #[test]
    fn leaf_from_the_file_ca_must_match_the_host() {
        let (ca, leaf) = ca_and_leaf(&["other.example"]);
        let server = tls_server(vec![leaf.der.clone()], &leaf.key);
        assert_certificate_rejected(fetch_tls(server, vec![ca.der]));
    }

    #[test]
    fn pinned_certificate_with_a_foreign_key_fails_the_signature_check() {
        let cert = self_signed("TrueConf", &["127.0.0.1"], IsCa::ExplicitNoCa);
        let impostor = KeyPair::generate().expect("key pair");
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let server = server_config(vec![cert.der.clone()], &impostor, &[version]);
            match fetch_tls(server, vec![cert.der.clone()]) {
                Err(ureq::Error::Rustls(_)) => {}
                other => panic!("{version:?}: expected a Rustls error, got {other:?}"),
            }
        }
    }

    #[test]
    fn empty_trust_list_rejects_every_certificate() {
        let cert = self_signed("TrueConf", &["127.0.0.1"], IsCa::ExplicitNoCa);
        let server = tls_server(vec![cert.der.clone()], &cert.key);
        assert_certificate_rejected(fetch_tls(server, Vec::new()));
    }

    #[test]
    fn plain_http_goes_without_tls() {
        let cert = self_signed("TrueConf", &["127.0.0.1"], IsCa::ExplicitNoCa);
        let (port, handle) = serve(None, 1);
        let agent = test_agent(vec![cert.der], DEADLINE);
        let body = fetch(&agent, &format!("http://127.0.0.1:{port}/")).expect("request");
        assert_eq!(body, "ok");
        handle.join().expect("server thread").expect("server");
    }

    #[test]
    fn idle_tls_connection_is_reused() {
        let cert = self_signed("TrueConf", &["127.0.0.1"], IsCa::ExplicitNoCa);
        // One accepted connection only: a second connect would stall its handshake until
        // the agent's deadline, failing the second request.
        let (port, handle) = serve(Some(tls_server(vec![cert.der.clone()], &cert.key)), 2);
        let agent = test_agent(vec![cert.der], DEADLINE);
        let url = format!("https://127.0.0.1:{port}/");
        assert_eq!(fetch(&agent, &url).expect("first request"), "ok");
        assert_eq!(fetch(&agent, &url).expect("second request"), "ok");
        handle.join().expect("server thread").expect("server");
    }

    #[test]
    fn silent_server_times_out_the_handshake() {
        let cert = self_signed("TrueConf", &["127.0.0.1"], IsCa::ExplicitNoCa);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        // Accepts and reads without ever answering, until the client hangs up.
        let handle = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().map_err(|e| e.to_string())?;
            tcp.set_read_timeout(Some(DEADLINE))
                .map_err(|e| e.to_string())?;
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink);
            Ok::<(), String>(())
        });
        let agent = test_agent(vec![cert.der], Duration::from_millis(300));
        let started = std::time::Instant::now();
        let result = fetch(&agent, &format!("https://127.0.0.1:{port}/"));
        assert!(matches!(result, Err(ureq::Error::Timeout(_))), "{result:?}");
        assert!(started.elapsed() < DEADLINE);
        drop(agent);
        handle.join().expect("server thread").expect("server");
    }

    /// A fresh scratch directory for one test.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tls-rs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn load_reports_short_reasons() {
        let dir = scratch_dir("load-errors");
        let missing = load_pem_certificates(&dir.join("absent.pem")).expect_err("missing");
        assert!(missing.starts_with("cannot be read: "), "{missing}");
        assert!(missing.contains("os error 2"), "{missing}");

        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "this is not a certificate\n\u{1}\u{2}\n").expect("write");
        assert_eq!(
            load_pem_certificates(&garbage),
            Err("holds no PEM certificate".to_owned())
        );

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        assert_eq!(
            load_pem_certificates(&empty),
            Err("holds no PEM certificate".to_owned())
        );

        let bad_base64 = dir.join("bad.pem");
        let text = "-----BEGIN CERTIFICATE-----\n@@@ not base64 @@@\n-----END CERTIFICATE-----\n";
        std::fs::write(&bad_base64, text).expect("write");
        let reason = load_pem_certificates(&bad_base64).expect_err("bad base64");
        assert!(reason.starts_with("is not valid PEM"), "{reason}");

        let unterminated = dir.join("unterminated.pem");
        std::fs::write(&unterminated, "-----BEGIN CERTIFICATE-----\nAAAA\n").expect("write");
        let reason = load_pem_certificates(&unterminated).expect_err("no END line");
        assert!(reason.starts_with("is not valid PEM"), "{reason}");

        assert_eq!(
            load_pem_certificates(&dir),
            Err("is not a regular file".to_owned())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn load_returns_every_certificate_and_skips_keys() {
        let dir = scratch_dir("load-two");
        let (ca, leaf) = ca_and_leaf(&["127.0.0.1"]);
        let path = dir.join("chain.pem");
        let text = format!("{}{}{}", leaf.pem, leaf.key.serialize_pem(), ca.pem);
        std::fs::write(&path, text).expect("write");
        let certs = load_pem_certificates(&path).expect("two certificates");
        assert_eq!(certs, vec![leaf.der, ca.der]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
