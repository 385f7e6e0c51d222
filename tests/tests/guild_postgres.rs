//! Guild settings in a real PostgreSQL server (Debian's `postgresql` package, installed by
//! `make deps`), started by the test in a temporary directory on a loopback port: the same
//! embedded migrations as SQLite, two stores (two connection pools, as two processes have)
//! seeing each other's changes, and two `run` processes in turn against the fake Discord, the
//! second reading what the first one's `/voice-settings` wrote.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use openclaw_voice::config::{Config, StorageConfig};
use openclaw_voice::guild::{GuildDefaults, GuildStore, SettingKey, StorageBackend, StoreError};
use openclaw_voice_tests::fake_discord::{model::perms, FakeDiscord, CAROL, GUILD_ID};
use openclaw_voice_tests::{toml_path, ConfigDir, PluginDir, Running, FAULT, TONE};

/// A PostgreSQL server for one test, stopped when dropped. As root (CI) it runs as the
/// `postgres` user, since PostgreSQL refuses to run as root.
struct PostgresServer {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|b| b.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): run `make deps`, \
             which installs Debian's postgresql package"
        )
    })
}

fn pg(bin: &Path, args: &[&str]) {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let out = command
        .args(args)
        .output()
        .expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        bin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PostgresServer {
    fn start() -> PostgresServer {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(ok.success(), "chown the data directory to postgres");
        }
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = data.display().to_string();
        pg(
            &bin.join("initdb"),
            &["-D", &d, "-U", "openclaw", "-A", "trust", "--no-sync"],
        );
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -F",
            dir.path().display()
        );
        let log = dir.path().join("log").display().to_string();
        pg(
            &bin.join("pg_ctl"),
            &["-D", &d, "-o", &opts, "-l", &log, "-w", "start"],
        );
        PostgresServer {
            _dir: dir,
            data,
            bin,
            port,
        }
    }

    fn url(&self) -> String {
        format!("postgres://openclaw@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let d = self.data.display().to_string();
        pg(
            &self.bin.join("pg_ctl"),
            &["-D", &d, "-m", "immediate", "stop"],
        );
    }
}

fn defaults() -> GuildDefaults {
    GuildDefaults::from_config(&Config::default())
}

#[test]
fn two_stores_share_settings_through_postgres() {
    let server = PostgresServer::start();
    let var = "OPENCLAW_TEST_GUILD_DATABASE_URL";
    std::env::set_var(var, server.url());
    let config = StorageConfig {
        path: String::new(),
        database_url_env: Some(var.into()),
        cache_ttl_ms: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let a = GuildStore::open(&config, defaults()).await.expect("open a");
        let b = GuildStore::open(&config, defaults())
            .await
            .expect("open b (migrated already)");
        assert_eq!(a.backend(), Some(StorageBackend::Postgres));
        a.set(11, SettingKey::Language, "pt-br", "u-a")
            .await
            .expect("set");
        a.set(11, SettingKey::WakeNames, "jarvis", "u-a")
            .await
            .expect("set");
        let seen = b.settings(11).await;
        assert_eq!(seen.language, "pt-br");
        assert_eq!(seen.wake_names, vec!["jarvis"]);
        b.set(11, SettingKey::Language, "de", "u-b")
            .await
            .expect("upsert");
        assert_eq!(a.settings(11).await.language, "de");
        assert_eq!(b.forget("u-a").await.expect("forget"), 1);
        assert_eq!(a.settings(11).await.wake_names, vec!["claw", "openclaw"]);
        std::env::set_var(var, "");
        let missing = GuildStore::open(&config, defaults()).await;
        assert!(matches!(missing, Err(StoreError::MissingUrl(v)) if v == var));
    });
}

#[test]
fn a_second_process_reads_what_the_first_one_set() {
    let server = PostgresServer::start();
    let fake = FakeDiscord::start();
    let plugins = PluginDir::with(&[FAULT, TONE]);
    let config = ConfigDir::new();
    config.write(
        "test.toml",
        &format!(
            "[plugins]\ndir = {}\n[stt]\nproviders = [\"ears\"]\n[tts]\nproviders = [\"voice\"]\n\
             [providers.ears]\nplugin = \"fault\"\n[providers.voice]\nplugin = \"tone\"\n\
             [ops]\nenabled = false\n[logging]\nlevel = \"info\"\n\
             [storage]\ndatabase_url_env = \"GUILD_DB_URL\"\n",
            toml_path(plugins.path()),
        ),
    );
    let url = server.url();
    let manage = perms::EVERYONE_DEFAULT | (1 << 5);
    let ask = |sub: &str, options: &[(&str, &str)]| {
        let id = fake.command_with(GUILD_ID, CAROL, "voice-settings", sub, options, manage);
        fake.wait_reply(id, Duration::from_secs(20))
            .expect("an answer to /voice-settings")
    };
    for round in 0..2 {
        let mut env = fake.bot_env();
        env.push(("GUILD_DB_URL".into(), url.clone()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut bot = Running::spawn(
            [
                "--config-dir",
                config.path().to_str().expect("UTF-8"),
                "--env",
                "test",
                "run",
            ],
            &env,
        );
        assert!(
            bot.wait_for_stderr("discord: connected as", Duration::from_secs(60))
                && fake.wait_ready(1, Duration::from_secs(60)),
            "the bot did not connect\n{}",
            bot.stderr()
        );
        if round == 0 {
            let set = ask("set", &[("setting", "agent_id"), ("value", "voice-ops")]);
            assert!(set.content.contains("is now voice-ops"), "{set:?}");
        } else {
            let view = ask("view", &[]);
            assert!(
                view.content.contains("`agent_id`: voice-ops (this server)"),
                "{view:?}"
            );
        }
        bot.signal("TERM");
        let run = bot.finish(Duration::from_secs(20));
        assert_eq!(run.code, Some(0), "{run}");
    }
}
