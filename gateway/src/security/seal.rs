//! Sealing MRTR `requestState` (2026-07-28): the provider's state travels
//! through the client encrypted and authenticated (ChaCha20-Poly1305, from
//! `ring`), bound to the method, the item, the provider and the principal,
//! with an expiry and a one-time id. A client can neither read it, alter it,
//! use it for another tool or caller, keep it past its expiry, nor use it
//! twice. Replicas configured with the same `input.state_key` accept each
//! other's states; without a key each process makes its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

/// `input:` in the config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Rounds of client input one request may take (both revisions).
    pub max_rounds: u32,
    /// How long a 2026-07-28 `requestState` stays valid.
    #[serde(with = "humantime_serde")]
    pub state_ttl: Duration,
    /// 32 bytes, hex (64 characters) or base64, as a secret reference
    /// (`${ENV}`, `file:PATH` or literal). Unset: a random key per process.
    pub state_key: Option<String>,
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            max_rounds: 8,
            state_ttl: Duration::from_secs(600),
            state_key: None,
        }
    }
}

/// Why a `requestState` was refused. The text is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("requestState was not issued by this gateway or was altered")]
    Forged,
    #[error("requestState expired; start the request again without it")]
    Expired,
    #[error("requestState was issued for another {0}")]
    Foreign(&'static str),
    #[error("requestState was already used; each one is good for one retry")]
    Replayed,
}

/// What a sealed state holds besides the provider's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// `tools/call`, `prompts/get` or `resources/read`.
    pub method: String,
    /// The item as the client named it (tool, prompt, URI).
    pub item: String,
    pub provider: String,
    pub principal: String,
}

/// A state as sealed and as opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub binding: Binding,
    /// Rounds done so far (1 after the first answer).
    pub round: u32,
    /// The input request ids the client is to answer.
    pub asked: Vec<String>,
    /// The provider's own state.
    #[serde(with = "b64")]
    pub state: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// One-time id (hex).
    id: String,
    /// Unix milliseconds.
    exp: u64,
    #[serde(flatten)]
    sealed: Sealed,
}

pub struct Sealer {
    key: LessSafeKey,
    ttl: Duration,
    /// One-time ids already opened, kept until they would have expired.
    used: moka::sync::Cache<String, ()>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("ttl", &self.ttl).finish()
    }
}

/// Why `input.state_key` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

impl Sealer {
    /// `key`: the resolved `input.state_key`, or `None` for a random one.
    pub fn new(key: Option<&str>, ttl: Duration) -> Result<Self, KeyError> {
        let bytes = match key {
            Some(k) => decode_key(k)?,
            None => {
                let mut k = [0u8; 32];
                getrandom::fill(&mut k).map_err(|e| KeyError(e.to_string()))?;
                k.to_vec()
            }
        };
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| KeyError("bad key".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            ttl,
            used: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(ttl.max(Duration::from_secs(1)))
                .build(),
        })
    }

    pub fn seal(&self, sealed: Sealed) -> String {
        let mut id = [0u8; 16];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut id).expect("the OS CSPRNG works");
        getrandom::fill(&mut nonce).expect("the OS CSPRNG works");
        let env = Envelope {
            id: hex::encode(id),
            exp: now_ms() + self.ttl.as_millis() as u64,
            sealed,
        };
        let mut buf = serde_json::to_vec(&env).expect("a state serializes");
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .expect("sealing cannot fail for in-range sizes");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens `token` for a request bound as `expect`; a good one is used up.
    pub fn open(&self, token: &str, expect: &Binding) -> Result<Sealed, SealError> {
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| SealError::Forged)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Forged);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Forged)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| SealError::Forged)?;
        let env: Envelope = serde_json::from_slice(plain).map_err(|_| SealError::Forged)?;
        let b = &env.sealed.binding;
        if b.method != expect.method || b.item != expect.item || b.provider != expect.provider {
            return Err(SealError::Foreign(match expect.method.as_str() {
                "tools/call" => "tool",
                "prompts/get" => "prompt",
                _ => "resource",
            }));
        }
        if b.principal != expect.principal {
            return Err(SealError::Foreign("caller"));
        }
        if env.exp <= now_ms() {
            return Err(SealError::Expired);
        }
        // Checked last: a refused state is not used up.
        if !self.used.entry(env.id).or_insert(()).is_fresh() {
            return Err(SealError::Replayed);
        }
        Ok(env.sealed)
    }
}

fn decode_key(k: &str) -> Result<Vec<u8>, KeyError> {
    let k = k.trim();
    let bytes = if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(k).map_err(|e| KeyError(e.to_string()))?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(k)
            .or_else(|_| URL_SAFE_NO_PAD.decode(k))
            .map_err(|_| KeyError("must be 32 bytes as 64 hex digits or base64".into()))?
    };
    if bytes.len() != 32 {
        return Err(KeyError(format!(
            "must be 32 bytes (64 hex digits or base64), got {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

mod b64 {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(principal: &str) -> Binding {
        Binding {
            method: "tools/call".into(),
            item: "hello.echo".into(),
            provider: "hello".into(),
            principal: principal.into(),
        }
    }

    fn state() -> Sealed {
        Sealed {
            binding: binding("alice"),
            round: 1,
            asked: vec!["confirm".into()],
            state: b"secret step".to_vec(),
        }
    }

    #[test]
    fn a_state_opens_once_for_its_binding_and_hides_its_content() {
        let s = Sealer::new(None, Duration::from_secs(60)).unwrap();
        let token = s.seal(state());
        assert!(!token.contains("secret"));
        assert_eq!(
            s.open(&token, &binding("bob")),
            Err(SealError::Foreign("caller"))
        );
        assert_eq!(s.open(&token, &binding("alice")), Ok(state()));
        assert_eq!(s.open(&token, &binding("alice")), Err(SealError::Replayed));
    }

    #[test]
    fn altered_expired_and_foreign_keys_are_refused() {
        let key = "11".repeat(32);
        let a = Sealer::new(Some(&key), Duration::from_secs(60)).unwrap();
        let b = Sealer::new(Some(&key), Duration::from_secs(60)).unwrap();
        let other = Sealer::new(None, Duration::from_secs(60)).unwrap();
        let token = a.seal(state());
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(a.open(&altered, &binding("alice")), Err(SealError::Forged));
        assert_eq!(
            a.open(&format!("{token}-TAMPERED"), &binding("alice")),
            Err(SealError::Forged)
        );
        assert_eq!(
            other.open(&token, &binding("alice")),
            Err(SealError::Forged)
        );
        // A replica with the same key accepts it.
        assert!(b.open(&token, &binding("alice")).is_ok());
        let short = Sealer::new(Some(&key), Duration::ZERO).unwrap();
        let stale = short.seal(state());
        assert_eq!(
            short.open(&stale, &binding("alice")),
            Err(SealError::Expired)
        );
        assert!(Sealer::new(Some("abcd"), Duration::ZERO).is_err());
    }
}
