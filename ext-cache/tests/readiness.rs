//! `/readyz` reports each cache; an unreachable Redis fails it only with `fail_readiness`.

mod common;

use flagon::serde_json::Value;
use flagon::testing::TestClient;

fn down(fail: bool) -> String {
    format!(
        "[cache]\nbackend = \"redis\"\nfail_readiness = {fail}\n[cache.redis]\nurl = \"redis://127.0.0.1:1\"\n\
         command_timeout = \"50ms\"\n[cache.named.bulk]\n"
    )
}

async fn readyz(toml: &str) -> (u16, Value) {
    let app = common::app(toml);
    let res = TestClient::new(&app).get("/readyz").send().await;
    let status = res.status().as_u16();
    (status, flagon::serde_json::from_str(&res.text()).unwrap())
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_but_passes_by_default() {
    let (status, body) = readyz(&down(false)).await;
    assert_eq!(status, 200, "{body}");
    let check = &body["checks"]["cache"];
    assert_eq!(check["status"], "ok", "{body}");
    assert_eq!(check["detail"]["reachable"], false, "{body}");
    assert_eq!(check["detail"]["backend"], "redis", "{body}");
    assert_eq!(
        body["checks"]["cache_bulk"]["detail"]["backend"], "memory",
        "{body}"
    );
}

#[tokio::test]
async fn fail_readiness_makes_it_fail() {
    let (status, body) = readyz(&down(true)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["cache"]["status"], "fail", "{body}");
}

#[tokio::test]
async fn a_reachable_redis_passes() {
    if !common::redis_up("a_reachable_redis_passes") {
        return;
    }
    let prefix = common::unique_prefix("ready");
    let (status, body) = readyz(&common::redis_toml(&prefix, "fail_readiness = true")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"]["cache"]["detail"]["reachable"], true,
        "{body}"
    );
    assert_eq!(
        body["checks"]["cache"]["detail"]["circuit_open"], false,
        "{body}"
    );
}
