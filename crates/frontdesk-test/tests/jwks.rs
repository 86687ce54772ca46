//! Tokens from an identity provider: ES256 keys published as a JWKS on a local server,
//! issuer and audience checks, key rotation and the refetch rate limit.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Json, Router, extract::State, routing::get};
use frontdesk_test::{AppOptions, TestApp, json, spawn_app_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::Value;
use uuid::Uuid;

const KEY: &[u8] = include_bytes!("fixtures/es256-test-key.pem");
const OTHER_KEY: &[u8] = include_bytes!("fixtures/es256-other-key.pem");
const ISSUER: &str = "https://idp.example.test/";
const AUDIENCE: &str = "frontdesk";

#[derive(Clone)]
struct Idp {
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

fn jwk(pem: &[u8], kid: &str) -> Value {
    let mut jwk =
        Jwk::from_encoding_key(&EncodingKey::from_ec_pem(pem).unwrap(), Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

async fn start_idp(keys: Value) -> (String, Idp) {
    let idp = Idp {
        keys: Arc::new(Mutex::new(keys)),
        fetches: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route(
            "/jwks.json",
            get(|State(idp): State<Idp>| async move {
                idp.fetches.fetch_add(1, Ordering::SeqCst);
                Json(idp.keys.lock().unwrap().clone())
            }),
        )
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, idp)
}

fn token(pem: &[u8], kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_pem(pem).unwrap()).unwrap()
}

fn claims(sub: &str) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "email": "idp@example.test"})
}

async fn app(url: String) -> TestApp {
    spawn_app_with(AppOptions {
        jwks_url: Some(url),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn es256_tokens_from_the_jwks_are_accepted_with_issuer_and_audience_checked() {
    let (url, _idp) = start_idp(json!({"keys": [jwk(KEY, "k1")]})).await;
    let app = app(url).await;
    let sub = Uuid::now_v7().to_string();
    let me = app.get("/v1/me", &token(KEY, "k1", claims(&sub))).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["id"], sub);
    assert_eq!(me.body["email"], "idp@example.test");

    // A `sub` that is not a UUID (Auth0, Keycloak) maps to a stable id.
    let auth0 = app
        .get(
            "/v1/me",
            &token(KEY, "k1", claims("auth0|5f7c8ec7c33c6c004bbafe82")),
        )
        .await;
    assert_eq!(auth0.status, 200);
    let again = app
        .get(
            "/v1/me",
            &token(KEY, "k1", claims("auth0|5f7c8ec7c33c6c004bbafe82")),
        )
        .await;
    assert_eq!(auth0.body["id"], again.body["id"]);

    let mut wrong_aud = claims(&sub);
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims(&sub);
    wrong_iss["iss"] = json!("https://evil.example.test/");
    let mut no_aud = claims(&sub);
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut expired = claims(&sub);
    expired["exp"] = json!(jsonwebtoken::get_current_timestamp() - 600);
    for (what, t) in [
        ("wrong audience", token(KEY, "k1", wrong_aud)),
        ("wrong issuer", token(KEY, "k1", wrong_iss)),
        ("no audience", token(KEY, "k1", no_aud)),
        ("expired", token(KEY, "k1", expired)),
        (
            "signed by another key",
            token(OTHER_KEY, "k1", claims(&sub)),
        ),
    ] {
        let reply = app.get("/v1/me", &t).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_its_first_use_and_unknown_kids_cannot_flood_the_idp() {
    let (url, idp) = start_idp(json!({"keys": [jwk(KEY, "k1")]})).await;
    let app = app(url).await;
    let sub = Uuid::now_v7().to_string();
    assert_eq!(
        app.get("/v1/me", &token(KEY, "k1", claims(&sub)))
            .await
            .status,
        200
    );
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    // A burst of tokens naming unknown kids: at most one more fetch per interval.
    for i in 0..20 {
        let reply = app
            .get("/v1/me", &token(KEY, &format!("nope-{i}"), claims(&sub)))
            .await;
        assert_eq!(reply.status, 401);
    }
    assert!(
        idp.fetches.load(Ordering::SeqCst) <= 2,
        "fetched {} times",
        idp.fetches.load(Ordering::SeqCst)
    );

    // The provider rotates to k2; after the interval the first k2 token fetches it.
    *idp.keys.lock().unwrap() = json!({"keys": [jwk(KEY, "k1"), jwk(OTHER_KEY, "k2")]});
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let rotated = app
        .get("/v1/me", &token(OTHER_KEY, "k2", claims(&sub)))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    // Configured issuer and audience apply to every token, HS256 ones included.
    assert_eq!(
        app.get("/v1/me", &frontdesk_test::user_token(Uuid::now_v7(), None))
            .await
            .status,
        401
    );
    let hs256 = jsonwebtoken::encode(
        &Header::default(),
        &claims(&Uuid::now_v7().to_string()),
        &EncodingKey::from_secret(frontdesk_test::JWT_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.get("/v1/me", &hs256).await.status, 200);
}
