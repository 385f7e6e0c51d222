//! [`GuildStore`]: guild settings in SQLite (a file, WAL mode) or PostgreSQL through `sqlx`,
//! with the same embedded migrations for both, and an in-memory cache in front.
//!
//! The turn path reads a guild's settings from the cache (a read lock and a map lookup);
//! a change through this process replaces the entry at once, and entries older than
//! `storage.cache_ttl_ms` are read again, so a change made by another process (PostgreSQL)
//! shows within that time.
//!
//! **Invariant: a database that cannot be used is never recreated or overwritten.** A
//! corrupt, read-only or unreachable database is a [`StoreError`] at start; `run` then goes
//! on with the configuration's defaults, `/health` reports the store down, and changes are
//! refused until it is fixed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::error::StoreError;
use super::settings::{GuildDefaults, GuildSettings, SettingKey};
use crate::config::StorageConfig;

/// The migrations, in order, compiled in: (version, description, SQL).
pub(crate) const MIGRATIONS: [(i64, &str, &str); 2] = [
    (
        1,
        "guild settings",
        include_str!("migrations/0001_guild_settings.sql"),
    ),
    (
        2,
        "forget and write check",
        include_str!("migrations/0002_forget_and_write_check.sql"),
    ),
];

/// The first `count` embedded migrations, as sqlx wants them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmbeddedMigrations(pub usize);

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .take(self.0)
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Which database holds the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl StorageBackend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageBackend::Sqlite => "sqlite",
            StorageBackend::Postgres => "postgres",
        }
    }
}

/// The database, or why there is none.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    Unavailable(String),
}

/// Runs the same query text on whichever pool `db` holds.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
            Db::Unavailable(why) => Err(StoreError::Unavailable(why.clone())),
        }
    };
}

/// Guild settings: the database and the cache in front of it.
pub struct GuildStore {
    db: Db,
    defaults: GuildDefaults,
    cache: RwLock<HashMap<u64, (Arc<GuildSettings>, Instant)>>,
    ttl: Duration,
}

impl std::fmt::Debug for GuildStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuildStore")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl GuildStore {
    /// Opens the database `config` names (PostgreSQL when `database_url_env` is set, else the
    /// SQLite file, created with its directory), runs the migrations and checks that it takes
    /// writes.
    pub async fn open(
        config: &StorageConfig,
        defaults: GuildDefaults,
    ) -> Result<GuildStore, StoreError> {
        let db = match &config.database_url_env {
            Some(var) if !var.trim().is_empty() => {
                let url = std::env::var(var)
                    .ok()
                    .filter(|u| !u.trim().is_empty())
                    .ok_or_else(|| StoreError::MissingUrl(var.clone()))?;
                Db::Postgres(open_postgres(&url, var).await?)
            }
            _ => Db::Sqlite(open_sqlite(Path::new(&config.path)).await?),
        };
        let store = GuildStore::with_db(db, defaults, config.cache_ttl_ms);
        store.migrate_at_start().await?;
        store.check_writable().await?;
        Ok(store)
    }

    /// Runs every migration. Processes sharing one SQLite file (a shard cluster on one host)
    /// may race: the loser finds the tables made and fails; once the winner has recorded them
    /// (a moment later, or seconds on a loaded host) they are applied. So it looks again (see
    /// [`again_while`]). PostgreSQL takes an advisory lock instead.
    async fn migrate_at_start(&self) -> Result<(), StoreError> {
        let sqlite = self.backend() == Some(StorageBackend::Sqlite);
        again_while(|| self.migrate(MIGRATIONS.len()), |_| sqlite).await
    }

    /// A store that could not be opened: the defaults for every guild, changes refused.
    pub fn unavailable(why: &StoreError, defaults: GuildDefaults) -> GuildStore {
        GuildStore::with_db(Db::Unavailable(why.to_string()), defaults, u64::MAX)
    }

    fn with_db(db: Db, defaults: GuildDefaults, ttl_ms: u64) -> GuildStore {
        GuildStore {
            db,
            defaults,
            cache: RwLock::new(HashMap::new()),
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    /// The backend, or none when the store is unavailable.
    pub fn backend(&self) -> Option<StorageBackend> {
        match self.db {
            Db::Sqlite(_) => Some(StorageBackend::Sqlite),
            Db::Postgres(_) => Some(StorageBackend::Postgres),
            Db::Unavailable(_) => None,
        }
    }

    /// Applies the first `count` embedded migrations (all of them at start; fewer in tests
    /// that build a database as an earlier release left it).
    pub(crate) async fn migrate(&self, count: usize) -> Result<(), StoreError> {
        let migrator = Migrator::new(EmbeddedMigrations(count))
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        let result = on_pool!(&self.db, |pool| migrator
            .run(pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string())));
        result
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        let sql = "INSERT INTO storage_check (id, opened_at) VALUES (1, $1) \
                   ON CONFLICT (id) DO UPDATE SET opened_at = excluded.opened_at";
        let at = now_unix();
        on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(query_error))
    }

    /// A guild's settings from the cache, if there and fresh: the turn path's lookup.
    pub fn cached(&self, guild: u64) -> Option<Arc<GuildSettings>> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&guild)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(s, _)| s.clone())
    }

    /// A guild's effective settings: from the cache, else read (and cached). An unavailable
    /// store, or a failed read, gives the defaults (logged), never an error on the turn path.
    pub async fn settings(&self, guild: u64) -> Arc<GuildSettings> {
        if let Some(s) = self.cached(guild) {
            return s;
        }
        let rows = match self.rows(guild).await {
            Ok(rows) => rows,
            Err(StoreError::Unavailable(_)) => Vec::new(),
            Err(e) => {
                tracing::warn!(guild, "reading guild settings failed, using defaults: {e}");
                return Arc::new(GuildSettings::resolve(&self.defaults, &[]));
            }
        };
        let settings = Arc::new(GuildSettings::resolve(&self.defaults, &rows));
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(guild, (settings.clone(), Instant::now()));
        settings
    }

    /// Drops a guild's cached settings (the next lookup reads the database).
    pub fn invalidate(&self, guild: u64) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&guild);
    }

    async fn rows(&self, guild: u64) -> Result<Vec<(String, String)>, StoreError> {
        let sql = "SELECT setting, value FROM guild_settings WHERE guild_id = $1 ORDER BY setting";
        let id = guild as i64;
        on_pool!(&self.db, |pool| sqlx::query_as::<_, (String, String)>(sql)
            .bind(id)
            .fetch_all(pool)
            .await
            .map_err(query_error))
    }

    /// Sets `key` to `value` (already canonical, see [`SettingKey::canonical`]) for `guild`,
    /// recording `by` (a hashed user id); the cache entry is replaced.
    pub async fn set(
        &self,
        guild: u64,
        key: SettingKey,
        value: &str,
        by: &str,
    ) -> Result<Arc<GuildSettings>, StoreError> {
        let sql = "INSERT INTO guild_settings (guild_id, setting, value, updated_by, updated_at) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guild_id, setting) DO UPDATE SET \
                   value = excluded.value, updated_by = excluded.updated_by, \
                   updated_at = excluded.updated_at";
        let (id, at) = (guild as i64, now_unix());
        on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(id)
            .bind(key.name())
            .bind(value)
            .bind(by)
            .bind(at)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(query_error))?;
        self.invalidate(guild);
        Ok(self.settings(guild).await)
    }

    /// Removes a guild's own value for `key` (the default applies again). Whether it had one.
    pub async fn reset(&self, guild: u64, key: SettingKey) -> Result<bool, StoreError> {
        let sql = "DELETE FROM guild_settings WHERE guild_id = $1 AND setting = $2";
        let id = guild as i64;
        let removed = on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(id)
            .bind(key.name())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(query_error))?;
        self.invalidate(guild);
        Ok(removed > 0)
    }

    /// Removes every setting `by` (a hashed user id) wrote, in every guild; those settings
    /// follow the defaults again. How many were removed.
    pub async fn forget(&self, by: &str) -> Result<u64, StoreError> {
        let sql = "DELETE FROM guild_settings WHERE updated_by = $1";
        let removed = on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(by)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(query_error))?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(removed)
    }

    /// How many settings rows `by` (a hashed user id) wrote.
    #[cfg(test)]
    pub(crate) async fn count_by(&self, by: &str) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM guild_settings WHERE updated_by = $1";
        on_pool!(&self.db, |pool| sqlx::query_scalar::<_, i64>(sql)
            .bind(by)
            .fetch_one(pool)
            .await
            .map_err(query_error))
    }
}

fn query_error(e: sqlx::Error) -> StoreError {
    StoreError::Query(e.to_string())
}

/// How many times [`again_while`] tries: about 5 s in all, 100 ms apart growing to 500 ms.
const SHARED_FILE_ATTEMPTS: u32 = 12;

/// Runs `op` until it succeeds, fails in a way `retry` does not accept, or
/// [`SHARED_FILE_ATTEMPTS`] are spent: how processes that open one SQLite file at once wait
/// for each other at start.
async fn again_while<T, E, Op, Fut>(mut op: Op, retry: impl Fn(&E) -> bool) -> Result<T, E>
where
    E: std::fmt::Display,
    Op: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < SHARED_FILE_ATTEMPTS && retry(&e) => {
                tracing::debug!(attempt, "opening the settings database again: {e}");
                let wait = (100 * u64::from(attempt)).min(500);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// SQLite's "busy" or "locked" (primary result codes 5 and 6, with any extended code).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// Opens (creating it and its directory if missing) the SQLite file in WAL mode. A file
/// without write permission is refused here: SQLite would open it read-only and fail at the
/// first change, and a root process would not notice the permission at all.
///
/// Switching a new file to WAL takes a lock SQLite's busy timeout does not wait for, so
/// processes creating one file at once find it busy: the open is tried again.
async fn open_sqlite(path: &Path) -> Result<SqlitePool, StoreError> {
    let file_error = |reason: String| StoreError::File {
        path: path.display().to_string(),
        reason,
    };
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().readonly() {
            return Err(file_error("the file is read-only".into()));
        }
        if !meta.is_file() {
            return Err(file_error("it is not a file".into()));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| file_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    again_while(|| connect_sqlite(path), is_busy)
        .await
        .map_err(|e| file_error(e.to_string()))
}

/// One attempt at opening the SQLite file and reading its schema (a corrupt file opens;
/// reading its schema is what fails).
async fn connect_sqlite(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    sqlx::query("SELECT COUNT(*) FROM sqlite_master")
        .execute(&pool)
        .await?;
    Ok(pool)
}

async fn open_postgres(url: &str, var: &str) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| StoreError::Server {
            var: var.to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn defaults() -> GuildDefaults {
        GuildDefaults::from_config(&Config::default())
    }

    fn sqlite_config(path: &Path) -> StorageConfig {
        StorageConfig {
            path: path.display().to_string(),
            database_url_env: None,
            cache_ttl_ms: 60_000,
        }
    }

    #[tokio::test]
    async fn settings_survive_a_restart_in_wal_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/guilds.sqlite");
        let config = sqlite_config(&path);
        let store = GuildStore::open(&config, defaults()).await.expect("open");
        assert_eq!(store.backend(), Some(StorageBackend::Sqlite));
        let s = store
            .set(1, SettingKey::Language, "de", "u-a")
            .await
            .expect("set");
        assert_eq!(s.language, "de");
        store
            .set(2, SettingKey::Language, "fr", "u-b")
            .await
            .expect("set");
        drop(store);
        let store = GuildStore::open(&config, defaults()).await.expect("reopen");
        assert_eq!(store.settings(1).await.language, "de");
        assert_eq!(store.settings(2).await.language, "fr");
        assert_eq!(store.settings(3).await.language, "en");
        let Db::Sqlite(pool) = &store.db else {
            panic!("not sqlite")
        };
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .expect("pragma");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_change_replaces_the_cached_entry_and_forget_removes_a_users_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = GuildStore::open(&sqlite_config(&dir.path().join("g.db")), defaults())
            .await
            .expect("open");
        assert_eq!(
            store.settings(7).await.reply_mode,
            crate::config::ReplyMode::Auto
        );
        assert!(store.cached(7).is_some());
        store
            .set(7, SettingKey::ReplyMode, "addressed", "u-a")
            .await
            .expect("set");
        let cached = store.cached(7).expect("cached after set");
        assert_eq!(cached.reply_mode, crate::config::ReplyMode::Addressed);
        store
            .set(7, SettingKey::Voice, "alloy", "u-b")
            .await
            .expect("set");
        store
            .set(8, SettingKey::AgentId, "ops", "u-a")
            .await
            .expect("set");
        assert_eq!(store.count_by("u-a").await.expect("count"), 2);
        assert_eq!(store.forget("u-a").await.expect("forget"), 2);
        let s = store.settings(7).await;
        assert_eq!(s.reply_mode, crate::config::ReplyMode::Auto);
        assert_eq!(s.voice.as_deref(), Some("alloy"));
        assert_eq!(store.settings(8).await.agent_id.as_deref(), Some("main"));
        assert!(store.reset(7, SettingKey::Voice).await.expect("reset"));
        assert_eq!(store.settings(7).await.voice, None);
    }

    #[tokio::test]
    async fn processes_opening_one_file_at_once_all_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = sqlite_config(&dir.path().join("shared.db"));
        let opens = (0..4).map(|_| GuildStore::open(&config, defaults()));
        for store in futures_util::future::join_all(opens).await {
            store.expect("every concurrent open succeeds");
        }
    }

    #[tokio::test]
    async fn migrations_run_forward_on_an_earlier_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = sqlite_config(&dir.path().join("old.db"));
        // The database as the release with only the first migration left it.
        let pool = open_sqlite(Path::new(&config.path)).await.expect("open");
        let old = GuildStore::with_db(Db::Sqlite(pool), defaults(), 0);
        old.migrate(1).await.expect("first migration");
        let insert = "INSERT INTO guild_settings VALUES (5, 'language', 'es', 'u-x', 0)";
        if let Db::Sqlite(pool) = &old.db {
            sqlx::query(insert).execute(pool).await.expect("insert");
        }
        drop(old);
        let store = GuildStore::open(&config, defaults())
            .await
            .expect("migrate forward");
        assert_eq!(store.settings(5).await.language, "es");
        assert_eq!(
            store.count_by("u-x").await.expect("index and table exist"),
            1
        );
    }

    #[tokio::test]
    async fn a_corrupt_or_read_only_file_is_an_error_and_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let corrupt = dir.path().join("corrupt.db");
        let garbage =
            b"this is not a database, it is a text file that happens to be here\n".repeat(100);
        std::fs::write(&corrupt, &garbage).expect("write");
        let e = GuildStore::open(&sqlite_config(&corrupt), defaults())
            .await
            .expect_err("corrupt file refused");
        let text = e.to_string();
        assert!(
            text.contains("corrupt.db") && text.contains("storage.path"),
            "{text}"
        );
        assert_eq!(std::fs::read(&corrupt).expect("read"), garbage);

        let readonly = dir.path().join("readonly.db");
        let store = GuildStore::open(&sqlite_config(&readonly), defaults())
            .await
            .expect("open");
        store
            .set(1, SettingKey::Language, "de", "u-a")
            .await
            .expect("set");
        drop(store);
        let mut perms = std::fs::metadata(&readonly).expect("meta").permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&readonly, perms).expect("chmod");
        let e = GuildStore::open(&sqlite_config(&readonly), defaults())
            .await
            .expect_err("read-only file refused");
        assert!(e.to_string().contains("read-only"), "{e}");

        let down = GuildStore::unavailable(&e, defaults());
        assert_eq!(down.backend(), None);
        assert_eq!(down.settings(1).await.language, "en");
        let refused = down.set(1, SettingKey::Language, "fr", "u-a").await;
        assert!(matches!(refused, Err(StoreError::Unavailable(_))));
    }
}
