//! A Redis store for core's sessions (`[session] store = "redis"`), on the `[cache.redis]`
//! connection settings and under `cache.session_key_prefix`.
//!
//! A record is a Redis hash: `v` (format version), `c` (created at), `e` (expires at) and
//! one field `d:KEY` per session key, holding its JSON. `update` is one Lua script, so it
//! applies to the record as it is at that moment and never recreates a deleted one;
//! `EXPIREAT` lets Redis drop records on its own clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use flagon::serde_json;
use flagon::session::{Changes, Id, Record, SessionStore, StoreError, StoreFuture, Updated};
use flagon::tracing;

use crate::redis::{Fail, RedisBackend};

const FORMAT: &str = "1";

const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'c', ARGV[2], 'e', ARGV[3])
local i = 4
while i <= #ARGV do
  redis.call('HSET', KEYS[1], 'd:' .. ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 1
";

const UPDATE: &str = r"
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
if ARGV[3] == '1' then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 'd:' then redis.call('HDEL', KEYS[1], f) end
  end
end
local i = 4
while i <= #ARGV do
  if ARGV[i] == 's' then
    redis.call('HSET', KEYS[1], 'd:' .. ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    redis.call('HDEL', KEYS[1], 'd:' .. ARGV[i + 1])
    i = i + 2
  end
end
redis.call('HSET', KEYS[1], 'e', ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 1
";

/// Core's sessions in Redis. Registered by [`Cache`](crate::Cache) under the name
/// `redis`; every call goes through the same timeout and circuit breaker as the cache.
pub struct RedisSessionStore {
    backend: Arc<RedisBackend>,
    create: redis::Script,
    update: redis::Script,
}

fn backend_error(f: Fail) -> StoreError {
    match f {
        Fail::Down => StoreError::Backend("Redis is unreachable (or the circuit is open)".into()),
        Fail::Reply(e) => StoreError::Backend(Box::new(e)),
    }
}

impl RedisSessionStore {
    pub(crate) fn new(backend: RedisBackend) -> Self {
        RedisSessionStore {
            backend: Arc::new(backend),
            create: redis::Script::new(CREATE),
            update: redis::Script::new(UPDATE),
        }
    }

    /// A store on the server at `url` (`redis://…`), its keys under `key_prefix`, with the
    /// default timeouts and breaker of [`RedisConfig`](crate::RedisConfig). Apps get one
    /// from `[session] store = "redis"` instead.
    ///
    /// ```
    /// let store = flagon_cache::RedisSessionStore::connect("redis://127.0.0.1:6379", "app:session:")
    ///     .unwrap();
    /// let id = flagon::session::Id::random();
    /// assert!(store.key_of(&id).starts_with("app:session:"));
    /// ```
    pub fn connect(url: &str, key_prefix: &str) -> Result<Self, flagon::BoxError> {
        let cfg = crate::RedisConfig {
            url: flagon::config::Secret::new(url),
            ..Default::default()
        };
        Ok(Self::new(RedisBackend::new(
            &cfg,
            key_prefix.to_owned(),
            "sessions",
        )?))
    }

    /// The Redis key of a session.
    pub fn key_of(&self, id: &Id) -> String {
        self.backend.key(&id.to_hex())
    }

    fn decode(fields: Vec<(String, Vec<u8>)>, id: Id) -> Result<Option<Record>, String> {
        if fields.is_empty() {
            return Ok(None);
        }
        let (mut version, mut created, mut expires) = (None, None, None);
        let mut data = BTreeMap::new();
        let num = |v: &[u8]| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        };
        for (f, v) in fields {
            match f.as_str() {
                "v" => version = Some(v),
                "c" => created = num(&v),
                "e" => expires = num(&v),
                _ => match f.strip_prefix("d:") {
                    Some(k) => {
                        let value =
                            serde_json::from_slice(&v).map_err(|e| format!("key `{k}`: {e}"))?;
                        data.insert(k.to_owned(), value);
                    }
                    None => return Err(format!("unknown field `{f}`")),
                },
            }
        }
        if version.as_deref() != Some(FORMAT.as_bytes()) {
            return Err("unknown format version".into());
        }
        match (created, expires) {
            (Some(created_at), Some(expires_at)) => Ok(Some(Record {
                id,
                data,
                created_at,
                expires_at,
            })),
            _ => Err("missing created or expires".into()),
        }
    }

    async fn drop_undecodable(&self, id: &Id, why: &str) {
        tracing::warn!(session = %&id.to_hex()[..8], "undecodable session record deleted: {why}");
        let _ = self.delete_now(id).await;
    }

    async fn delete_now(&self, id: &Id) -> Result<(), StoreError> {
        let key = self.key_of(id);
        self.backend
            .run("session delete", |mut con| async move {
                redis::cmd("UNLINK")
                    .arg(key)
                    .query_async::<()>(&mut con)
                    .await
            })
            .await
            .map_err(backend_error)
    }
}

fn json(v: &serde_json::Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encoding(Box::new(e)))
}

impl SessionStore for RedisSessionStore {
    fn create<'a>(&'a self, record: &'a mut Record) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut values = Vec::with_capacity(record.data.len());
            for (k, v) in &record.data {
                values.push((k.clone(), json(v)?));
            }
            for _ in 0..8 {
                let key = self.key_of(&record.id);
                let (script, values) = (&self.create, &values);
                let (c, e) = (record.created_at, record.expires_at);
                let created: i64 = self
                    .backend
                    .run("session create", |mut con| async move {
                        let mut inv = script.prepare_invoke();
                        inv.key(key).arg(FORMAT).arg(c).arg(e);
                        for (k, v) in values {
                            inv.arg(k).arg(v);
                        }
                        inv.invoke_async(&mut con).await
                    })
                    .await
                    .map_err(backend_error)?;
                if created == 1 {
                    return Ok(());
                }
                record.id = Id::random();
            }
            Err(StoreError::Backend(
                "no free session id after 8 attempts".into(),
            ))
        })
    }

    fn load<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let key = self.key_of(id);
            let r = self
                .backend
                .run("session load", |mut con| async move {
                    redis::cmd("HGETALL")
                        .arg(key)
                        .query_async::<Vec<(String, Vec<u8>)>>(&mut con)
                        .await
                })
                .await;
            match r {
                Ok(fields) => match Self::decode(fields, *id) {
                    Ok(r) => Ok(r),
                    Err(why) => {
                        self.drop_undecodable(id, &why).await;
                        Ok(None)
                    }
                },
                // Something that is not a hash (WRONGTYPE): not ours to read.
                Err(Fail::Reply(e)) => {
                    self.drop_undecodable(id, &e.to_string()).await;
                    Ok(None)
                }
                Err(f) => Err(backend_error(f)),
            }
        })
    }

    fn update<'a>(&'a self, id: &'a Id, changes: &'a Changes) -> StoreFuture<'a, Updated> {
        Box::pin(async move {
            let mut ops: Vec<(Vec<u8>, String, Option<Vec<u8>>)> =
                Vec::with_capacity(changes.keys.len());
            for (k, v) in &changes.keys {
                match v {
                    Some(v) => ops.push((b"s".to_vec(), k.clone(), Some(json(v)?))),
                    None => ops.push((b"r".to_vec(), k.clone(), None)),
                }
            }
            let key = self.key_of(id);
            let script = &self.update;
            let ops = &ops;
            let replace = if changes.replace { "1" } else { "0" };
            let applied: i64 = self
                .backend
                .run("session update", |mut con| async move {
                    let mut inv = script.prepare_invoke();
                    inv.key(key)
                        .arg(FORMAT)
                        .arg(changes.expires_at)
                        .arg(replace);
                    for (op, k, v) in ops {
                        inv.arg(op).arg(k);
                        if let Some(v) = v {
                            inv.arg(v);
                        }
                    }
                    inv.invoke_async(&mut con).await
                })
                .await
                .map_err(backend_error)?;
            Ok(if applied == 1 {
                Updated::Applied
            } else {
                Updated::Gone
            })
        })
    }

    fn delete<'a>(&'a self, id: &'a Id) -> StoreFuture<'a, ()> {
        Box::pin(self.delete_now(id))
    }
}
