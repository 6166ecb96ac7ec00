//! `mcp-gateway certs`: a development CA and the certificates signed by it
//! (a provider's server certificate for localhost/127.0.0.1 and the
//! gateway's client certificate), made with rcgen: no openssl needed.
//! For development and tests; production certificates come from your PKI.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// PEM texts of a CA and the two certificates it signed.
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

/// What to make; the defaults are what `mcp-gateway certs` writes.
pub struct Options {
    /// Subject alternative names of the server certificate.
    pub server_names: Vec<String>,
    /// Make the server certificate already expired (for tests).
    pub expired_server: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            expired_server: false,
        }
    }
}

pub fn generate(opts: &Options) -> Result<Bundle, CertsError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "mcp-gateway development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;

    let mut server = CertificateParams::new(opts.server_names.clone())?;
    server
        .distinguished_name
        .push(DnType::CommonName, "mcp-gateway provider");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if opts.expired_server {
        server.not_before = rcgen::date_time_ymd(2020, 1, 1);
        server.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, "mcp-gateway");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &issuer)?;

    Ok(Bundle {
        ca_cert: issuer.pem(),
        ca_key: ca_key_pem,
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}

impl Bundle {
    /// Writes `ca.pem ca.key server.pem server.key client.pem client.key`;
    /// keys are readable by the owner only.
    pub fn write(&self, dir: &Path) -> Result<(), CertsError> {
        let err = |path: &Path| {
            let path = path.display().to_string();
            move |source| CertsError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        for (name, text, secret) in [
            ("ca.pem", &self.ca_cert, false),
            ("ca.key", &self.ca_key, true),
            ("server.pem", &self.server_cert, false),
            ("server.key", &self.server_key, true),
            ("client.pem", &self.client_cert, false),
            ("client.key", &self.client_key, true),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(err(&path))?;
            #[cfg(unix)]
            if secret {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(err(&path))?;
            }
            #[cfg(not(unix))]
            let _ = secret;
        }
        Ok(())
    }
}
