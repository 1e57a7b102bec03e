//! The Redis store (feature `redis`), with its own URL.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::{RememberStore, StoreError, StoreFuture, TokenRecord};

/// Replaces the validator if it is still ARGV[1]; keeps the key's TTL.
const ROTATE: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local r = cjson.decode(raw)
if r.validator_hash ~= ARGV[1] then return 0 end
r.previous_hash = r.validator_hash
r.validator_hash = ARGV[2]
r.rotated_at = tonumber(ARGV[3])
redis.call('SET', KEYS[1], cjson.encode(r), 'KEEPTTL')
return 1
";

/// Deletes every series of a user: the user's set names them.
const DELETE_USER: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, sel in ipairs(members) do
  n = n + redis.call('DEL', ARGV[1] .. sel)
end
redis.call('DEL', KEYS[1])
return n
";

/// Remember-me tokens in Redis: each series a JSON value under `{prefix}t:{selector}` that
/// expires with the token, and a set `{prefix}u:{user id}` of the user's selectors.
/// Rotation is one Lua script (compare-and-set). Every call is bounded by
/// `login.redis_timeout`; a failure is a [`StoreError`] (the request is then anonymous,
/// logged), and the connection is re-made in the background.
pub struct RedisRememberStore {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    conn: OnceCell<ConnectionManager>,
    rotate: redis::Script,
    delete_user: redis::Script,
}

impl std::fmt::Debug for RedisRememberStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRememberStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn err(e: impl Into<flagon::BoxError>) -> StoreError {
    StoreError::Backend(e.into())
}

impl RedisRememberStore {
    /// A store on the server at `url` with keys under `prefix`, each call bounded by
    /// `timeout`. Connects on first use.
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<RedisRememberStore, StoreError> {
        Ok(RedisRememberStore {
            client: redis::Client::open(url).map_err(err)?,
            prefix: prefix.to_owned(),
            timeout,
            conn: OnceCell::new(),
            rotate: redis::Script::new(ROTATE),
            delete_user: redis::Script::new(DELETE_USER),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            self.timeout,
            self.conn
                .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), cfg)),
        )
        .await
        .map_err(|_| err("Redis did not answer in time"))?
        .map_err(err)?;
        Ok(conn.clone())
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| err("Redis did not answer in time"))?
            .map_err(err)
    }

    fn token_key(&self, selector: &str) -> String {
        format!("{}t:{selector}", self.prefix)
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}u:{user}", self.prefix)
    }
}

impl RememberStore for RedisRememberStore {
    fn insert<'a>(&'a self, r: &'a TokenRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut c = self.conn().await?;
            let now = flagon::session::unix_secs(std::time::SystemTime::now());
            if r.expires_at <= now {
                return Ok(()); // already expired: nothing to keep
            }
            let ttl = r.expires_at - now;
            let json = flagon::serde_json::to_string(r).map_err(err)?;
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(self.token_key(&r.selector))
                .arg(json)
                .arg("EX")
                .arg(ttl)
                .ignore()
                .cmd("SADD")
                .arg(self.user_key(&r.user_id))
                .arg(&r.selector)
                .ignore();
            self.bounded(pipe.query_async::<()>(&mut c)).await
        })
    }

    fn get<'a>(&'a self, selector: &'a str) -> StoreFuture<'a, Option<TokenRecord>> {
        Box::pin(async move {
            let mut c = self.conn().await?;
            let raw: Option<String> = self
                .bounded(
                    redis::cmd("GET")
                        .arg(self.token_key(selector))
                        .query_async(&mut c),
                )
                .await?;
            Ok(raw.and_then(|s| flagon::serde_json::from_str(&s).ok()))
        })
    }

    fn rotate<'a>(
        &'a self,
        selector: &'a str,
        current: &'a str,
        next: &'a str,
        now: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut c = self.conn().await?;
            let mut inv = self.rotate.key(self.token_key(selector));
            inv.arg(current).arg(next).arg(now);
            let n: i64 = self.bounded(inv.invoke_async(&mut c)).await?;
            Ok(n == 1)
        })
    }

    fn delete<'a>(&'a self, selector: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut c = self.conn().await?;
            let _: i64 = self
                .bounded(
                    redis::cmd("DEL")
                        .arg(self.token_key(selector))
                        .query_async(&mut c),
                )
                .await?;
            Ok(())
        })
    }

    fn delete_user<'a>(&'a self, user_id: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let mut c = self.conn().await?;
            let mut inv = self.delete_user.key(self.user_key(user_id));
            inv.arg(format!("{}t:", self.prefix));
            let n: i64 = self.bounded(inv.invoke_async(&mut c)).await?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn purge_expired(&self, now: u64) -> StoreFuture<'_, u64> {
        // Redis expires the series itself (each key's TTL is the token's).
        let _ = now;
        Box::pin(async { Ok(0) })
    }
}
