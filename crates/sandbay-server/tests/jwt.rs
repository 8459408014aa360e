//! Bearer JWTs over real HTTP: valid tokens act as their `sub`; expired,
//! not yet valid, wrongly signed, wrong-audience, `alg: none` and
//! algorithm-swapped tokens get 401 and reach nothing.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use sandbay_server::auth::{JwtAlgorithm, JwtConfig, JwtVerifier};
use sandbay_server::{KeyStore, Server, ServerConfig};
use serde_json::{Value, json};

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ed_token(key_file: &str, claims: &Value) -> String {
    let pem = std::fs::read(keys_dir().join(key_file)).unwrap();
    jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        claims,
        &EncodingKey::from_ed_pem(&pem).unwrap(),
    )
    .unwrap()
}

fn claims(sub: &str, aud: &str, exp_offset: i64, nbf_offset: Option<i64>) -> Value {
    let mut c = json!({"sub": sub, "aud": aud, "exp": (now() as i64 + exp_offset)});
    if let Some(n) = nbf_offset {
        c["nbf"] = json!(now() as i64 + n);
    }
    c
}

async fn start() -> (String, tempfile::TempDir, tokio::task::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let jwt = JwtConfig {
        algorithm: JwtAlgorithm::EdDSA,
        secret_env: None,
        public_key: Some(keys_dir().join("ed25519-test-only.pub.pem")),
        audience: "sandbay-test".into(),
        issuer: None,
        leeway_secs: 0,
    };
    let mut keys = KeyStore::default().with_jwt(Some(JwtVerifier::new(&jwt).unwrap()));
    keys.insert("alice", "sbk_key-user-alice");
    let config = ServerConfig {
        data: dir.path().to_path_buf(),
        ..ServerConfig::default()
    };
    let server = Server::open_with_keys(config, keys).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = server.serve(listener, std::future::pending()).await;
    });
    (base, dir, task)
}

async fn status(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
) -> StatusCode {
    client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn tokens_are_checked_fully() {
    let (base, _dir, task) = start().await;
    let client = reqwest::Client::new();
    let alice = ed_token(
        "ed25519-test-only.pem",
        &claims("alice", "sandbay-test", 300, None),
    );
    let bob = ed_token(
        "ed25519-test-only.pem",
        &claims("bob", "sandbay-test", 300, Some(-10)),
    );
    assert_eq!(
        status(
            &client,
            &base,
            &alice,
            reqwest::Method::PUT,
            "/v1/sessions/s"
        )
        .await,
        StatusCode::CREATED
    );
    let put = client
        .put(format!("{base}/v1/sessions/s/files/f.txt"))
        .bearer_auth(&alice)
        .body("alice")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    // a token's users are a name space of their own: the key user
    // "alice" is someone else
    assert_eq!(
        status(
            &client,
            &base,
            "sbk_key-user-alice",
            reqwest::Method::GET,
            "/v1/sessions/s"
        )
        .await,
        StatusCode::NOT_FOUND
    );
    // bob's valid token is bob: alice's session does not exist for him
    assert_eq!(
        status(
            &client,
            &base,
            &bob,
            reqwest::Method::GET,
            "/v1/sessions/s/files/f.txt"
        )
        .await,
        StatusCode::NOT_FOUND
    );

    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let good_claims = claims("alice", "sandbay-test", 300, None);
    let hs_key = std::fs::read(keys_dir().join("ed25519-test-only.pub.pem")).unwrap();
    let bad = [
        (
            "expired",
            ed_token(
                "ed25519-test-only.pem",
                &claims("alice", "sandbay-test", -120, None),
            ),
        ),
        (
            "not yet valid",
            ed_token(
                "ed25519-test-only.pem",
                &claims("alice", "sandbay-test", 300, Some(120)),
            ),
        ),
        (
            "another audience",
            ed_token(
                "ed25519-test-only.pem",
                &claims("alice", "elsewhere", 300, None),
            ),
        ),
        (
            "signed by another key",
            ed_token("other-ed25519-test-only.pem", &good_claims),
        ),
        (
            "no exp",
            ed_token(
                "ed25519-test-only.pem",
                &json!({"sub": "alice", "aud": "sandbay-test"}),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&good_claims)
            ),
        ),
        (
            // the public key used as an HMAC secret: the classic algorithm swap
            "HS256 with the public key",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &good_claims,
                &EncodingKey::from_secret(&hs_key),
            )
            .unwrap(),
        ),
        ("tampered payload", {
            let t = ed_token(
                "ed25519-test-only.pem",
                &claims("bob", "sandbay-test", 300, None),
            );
            let parts: Vec<&str> = t.split('.').collect();
            format!("{}.{}.{}", parts[0], b64(&good_claims), parts[2])
        }),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, token) in bad {
        for (method, path) in [
            (reqwest::Method::GET, "/v1/sessions"),
            (reqwest::Method::GET, "/v1/sessions/s/files/f.txt"),
            (reqwest::Method::DELETE, "/v1/sessions/s"),
        ] {
            assert_eq!(
                status(&client, &base, &token, method.clone(), path).await,
                StatusCode::UNAUTHORIZED,
                "{what}: {method} {path}"
            );
        }
    }
    // nothing was changed by any of them
    let body = client
        .get(format!("{base}/v1/sessions/s/files/f.txt"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "alice");
    task.abort();
}

#[test]
fn bad_configurations_are_refused_at_start() {
    let missing = JwtConfig {
        algorithm: JwtAlgorithm::EdDSA,
        secret_env: None,
        public_key: Some("/nonexistent/key.pem".into()),
        audience: "a".into(),
        issuer: None,
        leeway_secs: 30,
    };
    assert!(
        JwtVerifier::new(&missing)
            .unwrap_err()
            .contains("cannot read")
    );
    let short = JwtConfig {
        algorithm: JwtAlgorithm::HS256,
        secret_env: Some("SANDBAY_TEST_UNSET_SECRET_VAR".into()),
        public_key: None,
        ..missing
    };
    assert!(JwtVerifier::new(&short).unwrap_err().contains("32 bytes"));
}

#[tokio::test]
async fn hs256_tokens_from_a_shared_secret() {
    let secret = "a shared secret of more than thirty-two bytes";
    // SAFETY: no other test reads or writes this variable.
    unsafe { std::env::set_var("SANDBAY_TEST_HS256_SECRET", secret) };
    let config = JwtConfig {
        algorithm: JwtAlgorithm::HS256,
        secret_env: Some("SANDBAY_TEST_HS256_SECRET".into()),
        public_key: None,
        audience: "app".into(),
        issuer: Some("https://login.example".into()),
        leeway_secs: 0,
    };
    let keys = KeyStore::default().with_jwt(Some(JwtVerifier::new(&config).unwrap()));
    let mint = |claims: &Value, secret: &str| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let mut good = claims("carol", "app", 300, None);
    good["iss"] = json!("https://login.example");
    let caller = keys.authenticate(Some(&format!("Bearer {}", mint(&good, secret))));
    assert_eq!(
        caller.unwrap(),
        sandbay_server::Caller::User("jwt:carol".into())
    );
    let mut other_issuer = good.clone();
    other_issuer["iss"] = json!("https://evil.example");
    // a token without `iss` is refused when an issuer is configured
    let no_issuer = claims("carol", "app", 300, None);
    assert!(no_issuer.get("iss").is_none());
    for token in [
        mint(&other_issuer, secret),
        mint(&no_issuer, secret),
        mint(&good, "another secret that is also long enough"),
    ] {
        assert!(keys.authenticate(Some(&format!("Bearer {token}"))).is_err());
    }
}
