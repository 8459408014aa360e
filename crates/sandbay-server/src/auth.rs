//! Who is calling: API keys from a keys file, and the admin key.
//!
//! A key is `sbk_` and 43 characters of URL-safe base64 (32 random
//! bytes). The keys file holds one line per key, `USER sha256:HEX`: the
//! SHA-256 of the key, never the key itself (keys are random, so a fast
//! hash is enough; a leaked file gives no key). `#` starts a comment.
//!
//! An application with its own login can instead mint bearer JWTs for its
//! users ([`JwtConfig`]): HS256 with a shared secret, or RS256 / EdDSA
//! checked with a public key. `sub` names the user; `exp`, `aud` (and
//! `nbf`, and `iss`, required when configured) are checked; the algorithm is
//! the configured one only, so `alg: none` and algorithm swaps fail.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The prefix of every API key.
pub const KEY_PREFIX: &str = "sbk_";

/// The prefix of the user id of a JWT's `sub`: a token's users have a
/// name space of their own, so a login that lets someone call themselves
/// `alice` never reaches the key user `alice`.
pub const JWT_USER_PREFIX: &str = "jwt:";

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A user: every route is scoped to their sessions.
    User(String),
    /// The operator: admin routes only.
    Admin,
}

/// Errors of the keys file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The file could not be read or written.
    #[error("keys file: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not `USER sha256:HEX`.
    #[error("keys file line {line}: expected `USER sha256:HEX`")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// A user id that cannot be written in the file.
    #[error(
        "user ids are 1 to 64 bytes without spaces or control characters, not starting with `jwt:`"
    )]
    InvalidUser,
    /// The system's random source failed.
    #[error("no random bytes for a new key: {0}")]
    Random(String),
}

type Digest32 = [u8; 32];

fn digest(key: &str) -> Digest32 {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Digest32> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Whether `user` can be a user id of the keys file (never one of the
/// JWT users' name space, [`JWT_USER_PREFIX`]).
pub fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && !user.starts_with(JWT_USER_PREFIX)
        && user.len() <= 64
        && !user.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The signature algorithm of the JWTs a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256, checked with a public key.
    RS256,
    /// Ed25519, checked with a public key.
    EdDSA,
}

/// How bearer JWTs are checked (`[jwt]` in the configuration file).
///
/// ```
/// let config: sandbay_server::auth::JwtConfig = toml::from_str(r#"
///     algorithm = "EdDSA"
///     public_key = "/etc/sandbay/jwt.pub.pem"
///     audience = "sandbay"
/// "#).unwrap();
/// assert_eq!(config.algorithm, sandbay_server::auth::JwtAlgorithm::EdDSA);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The one algorithm accepted.
    pub algorithm: JwtAlgorithm,
    /// HS256: the environment variable that holds the secret (default
    /// `SANDBAY_JWT_SECRET`), so the secret is never in a file.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// RS256 and EdDSA: a PEM file with the public key.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    /// The `aud` every token must carry.
    pub audience: String,
    /// The `iss` every token must carry, if set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds. Default 30.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    30
}

/// A JWT checker built from a [`JwtConfig`].
#[derive(Clone)]
pub struct JwtVerifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .field("audience", &self.validation.aud)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl JwtVerifier {
    /// Reads the key named by `config`.
    ///
    /// # Errors
    /// A missing secret or key file, or a key that is not valid PEM, as
    /// text for the operator.
    pub fn new(config: &JwtConfig) -> Result<JwtVerifier, String> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let read_pem = || -> Result<Vec<u8>, String> {
            let path = config
                .public_key
                .as_ref()
                .ok_or("jwt: public_key is required for RS256 and EdDSA")?;
            std::fs::read(path).map_err(|e| format!("jwt: cannot read {}: {e}", path.display()))
        };
        let (algorithm, key) = match config.algorithm {
            JwtAlgorithm::HS256 => {
                let var = config.secret_env.as_deref().unwrap_or("SANDBAY_JWT_SECRET");
                let secret = std::env::var(var)
                    .ok()
                    .filter(|s| s.len() >= 32)
                    .ok_or_else(|| {
                        format!("jwt: HS256 needs a secret of at least 32 bytes in ${var}")
                    })?;
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            JwtAlgorithm::RS256 => (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(&read_pem()?).map_err(|e| format!("jwt: {e}"))?,
            ),
            JwtAlgorithm::EdDSA => (
                Algorithm::EdDSA,
                DecodingKey::from_ed_pem(&read_pem()?).map_err(|e| format!("jwt: {e}"))?,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = config.leeway_secs;
        validation.set_audience(&[&config.audience]);
        match &config.issuer {
            Some(iss) => {
                // a configured issuer is required, not only checked when present
                validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
                validation.set_issuer(&[iss]);
            }
            None => validation.set_required_spec_claims(&["exp", "sub", "aud"]),
        }
        Ok(JwtVerifier { key, validation })
    }

    /// The user a valid token names.
    fn user(&self, token: &str) -> Option<String> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) if valid_user(&data.claims.sub) => Some(data.claims.sub),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "a bearer JWT was refused");
                None
            }
        }
    }
}

/// The API keys a server accepts, its admin key, and its JWT checker.
#[derive(Debug, Default, Clone)]
pub struct KeyStore {
    /// Key digest to user.
    users: HashMap<Digest32, String>,
    admin: Option<Digest32>,
    jwt: Option<Arc<JwtVerifier>>,
}

impl KeyStore {
    /// Loads the keys file; a missing file is an empty store.
    ///
    /// # Errors
    /// An unreadable file or a malformed line.
    pub fn load(path: &Path) -> Result<KeyStore, KeysError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        let mut store = KeyStore::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(' ')
                .ok_or(KeysError::Malformed { line: i + 1 })?;
            let hash = hash
                .trim()
                .strip_prefix("sha256:")
                .and_then(unhex)
                .ok_or(KeysError::Malformed { line: i + 1 })?;
            if !valid_user(user) {
                return Err(KeysError::Malformed { line: i + 1 });
            }
            store.users.insert(hash, user.to_owned());
        }
        Ok(store)
    }

    /// Sets the admin key (`None`: no admin routes).
    pub fn with_admin_key(mut self, key: Option<&str>) -> Self {
        self.admin = key.map(digest);
        self
    }

    /// Accepts bearer JWTs checked by `verifier` besides the keys.
    pub fn with_jwt(mut self, verifier: Option<JwtVerifier>) -> Self {
        self.jwt = verifier.map(Arc::new);
        self
    }

    /// Adds a key in memory (tests, embedding applications).
    pub fn insert(&mut self, user: &str, key: &str) {
        self.users.insert(digest(key), user.to_owned());
    }

    /// Number of user keys.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is no user key.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Who holds `key`, if anyone. The admin key is compared in constant
    /// time; a user key is found by its digest (the digest of a guess
    /// tells nothing about the keys) and then compared in constant time.
    pub fn identify(&self, key: &str) -> Option<Caller> {
        let presented = digest(key);
        if let Some(admin) = &self.admin
            && bool::from(admin.ct_eq(&presented))
        {
            return Some(Caller::Admin);
        }
        let (stored, user) = self.users.get_key_value(&presented)?;
        bool::from(stored.ct_eq(&presented)).then(|| Caller::User(user.clone()))
    }

    /// The caller of a request with this `Authorization` header value.
    ///
    /// # Errors
    /// `unauthorized` (401) when there is none or it is not valid.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, ApiError> {
        let header = header.ok_or_else(|| {
            ApiError::unauthorized(
                "send `Authorization: Bearer <key>`; make a key with `sandbay keys add USER`",
            )
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <key>`")
            })?;
        if !token.starts_with(KEY_PREFIX)
            && let Some(jwt) = &self.jwt
            && token.split('.').count() == 3
        {
            return jwt
                .user(token)
                .map(|sub| Caller::User(format!("{JWT_USER_PREFIX}{sub}")))
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "the token is not valid: wrong signature or algorithm, expired, not yet valid, or for another audience",
                    )
                });
        }
        self.identify(token)
            .ok_or_else(|| ApiError::unauthorized("the key is not valid"))
    }
}

/// A new random API key.
///
/// # Errors
/// When the system has no random source.
pub fn new_key() -> Result<String, KeysError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeysError::Random(e.to_string()))?;
    Ok(format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Makes a key for `user`, appends its digest to the keys file (made
/// with mode 0600 when missing), and returns the key: the only time it is
/// shown.
///
/// # Errors
/// An invalid user id, or a file that cannot be written.
pub fn add_key(path: &Path, user: &str) -> Result<String, KeysError> {
    if !valid_user(user) {
        return Err(KeysError::InvalidUser);
    }
    let key = new_key()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // a file made earlier with a wider mode is narrowed too
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    writeln!(file, "{user} sha256:{}", hex(&digest(&key)))?;
    file.sync_all()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let a = add_key(&path, "alice").unwrap();
        let b = add_key(&path, "bob@example.com").unwrap();
        assert!(a.starts_with(KEY_PREFIX) && a.len() == 47 && a != b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            // a keys file made by hand with a wider mode is narrowed
            let other = dir.path().join("wide");
            std::fs::write(&other, "").unwrap();
            std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
            add_key(&other, "carol").unwrap();
            assert_eq!(mode(&other), 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&a[4..]), "the file never holds a key");
        let store = KeyStore::load(&path)
            .unwrap()
            .with_admin_key(Some("root-key"));
        assert_eq!(store.identify(&a), Some(Caller::User("alice".into())));
        assert_eq!(
            store.identify(&b),
            Some(Caller::User("bob@example.com".into()))
        );
        assert_eq!(store.identify("root-key"), Some(Caller::Admin));
        assert_eq!(store.identify(&format!("{a}x")), None);
        assert_eq!(store.identify(""), None);
        assert!(add_key(&path, "two words").is_err());
        assert!(add_key(&path, "").is_err());
    }

    #[test]
    fn malformed_lines_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        for bad in ["alice", "alice sha256:zz", "alice md5:00", " sha256:00"] {
            std::fs::write(&path, format!("# ok\n{bad}\n")).unwrap();
            assert!(
                matches!(KeyStore::load(&path), Err(KeysError::Malformed { line: 2 })),
                "{bad}"
            );
        }
        assert!(
            KeyStore::load(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn headers() {
        let mut store = KeyStore::default();
        store.insert("u", "sbk_k");
        assert_eq!(
            store.authenticate(Some("Bearer sbk_k")).unwrap(),
            Caller::User("u".into())
        );
        for bad in [
            None,
            Some("sbk_k"),
            Some("Basic sbk_k"),
            Some("Bearer nope"),
        ] {
            assert_eq!(store.authenticate(bad).unwrap_err().code, "unauthorized");
        }
    }
}
