//! moto's `moto_server` (PyPI `moto[server]`), the local implementation of the AWS APIs that
//! the CloudWatch Logs sink is tested against, on a loopback port; and reading a log stream
//! back with the AWS SDK.
//!
//! moto_server is found in `$MOTO_SERVER`, `target/moto-venv/bin/`, or on `PATH`; when it is
//! nowhere, it is installed into `target/moto-venv` with `python3 -m venv` and pip (`make
//! moto` does the same beforehand in `make test`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::Client;

/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// The moto_server executable, installing moto into target/moto-venv when it is missing.
pub fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return p.into();
    }
    let venv = crate::workspace_root().join("target/moto-venv");
    let in_venv = venv.join("bin/moto_server");
    if in_venv.exists() {
        return in_venv;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    }) {
        return found;
    }
    let run = |cmd: &mut Command| {
        let status = cmd.status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "installing moto[server] failed ({cmd:?}: {status:?}); install it with \
             `make moto` (python3-venv and PyPI needed) or set MOTO_SERVER"
        );
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip")).args(["install", "-q", "moto[server]"]));
    in_venv
}

/// A running moto_server, stopped on drop.
pub struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    /// Starts moto_server on a free loopback port and waits (30 s at most) until it listens.
    pub fn start() -> Moto {
        let addr = free_port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, addr };
        let end = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < end,
                "moto_server did not listen on {addr} in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Its URL, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every message in `group`/`stream`, oldest first.
    pub fn read_back(&self, group: &str, stream: &str) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(read_stream(&self.url(), group, stream))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address nothing listens on (the port was free a moment ago).
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().expect("its address")
}

/// The environment a process needs to reach moto (or `endpoint`) with test credentials,
/// whatever the developer's AWS setup.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_SESSION_TOKEN", String::new()),
        ("AWS_PROFILE", String::new()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

async fn read_stream(endpoint: &str, group: &str, stream: &str) -> Vec<String> {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    let client = Client::from_conf(config);
    let mut messages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("GetLogEvents");
        let events = page.events();
        messages.extend(
            events
                .iter()
                .filter_map(|e| e.message().map(str::to_string)),
        );
        let next = page.next_forward_token().map(str::to_string);
        if events.is_empty() || next == token {
            break;
        }
        token = next;
    }
    messages
}
