//! The HTTP ceiling for `bench/run.sh`: a bare axum JSON handler in a process of its own, with
//! nothing of keygate. It is the same handler as keygate's `POST /_bench/bare` (`bench_routes`).
//!
//! `cargo build --release --example ceiling && target/release/examples/ceiling PORT`
//! (or `ADDR:PORT`); it answers `POST /` until it is killed.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

async fn bench_json(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({"valid": true, "code": "VALID", "echo": body.get("key")}))
}

#[tokio::main]
async fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "8081".into());
    let addr = if arg.contains(':') {
        arg
    } else {
        format!("127.0.0.1:{arg}")
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    eprintln!(
        "ceiling: listening on http://{}",
        listener.local_addr().expect("local address")
    );
    axum::serve(listener, Router::new().route("/", post(bench_json)))
        .await
        .expect("serve");
}
