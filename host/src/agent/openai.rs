//! The `openai-chat` agent: streaming `POST {base_url}/v1/chat/completions` (server-sent
//! events), as the OpenClaw gateway, OpenAI and Ollama speak it.

use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{AgentError, AgentRequest, Memory, ReplyStream};
use crate::config::AgentConfig;
use crate::telemetry::hash_user;

/// A client for an OpenAI-compatible chat server.
#[derive(Debug)]
pub struct OpenAiChat {
    client: reqwest::Client,
    url: String,
    token: Option<SecretString>,
    model: String,
    system_prompt: String,
    max_tokens: u32,
    temperature: f64,
    send_user: bool,
    first_token_timeout: Duration,
    total_timeout: Duration,
    memory: Arc<Memory>,
}

impl OpenAiChat {
    /// Builds the client; reads the token from `api_key_env` if one is named.
    pub fn new(cfg: &AgentConfig) -> Result<Self, AgentError> {
        let token = match &cfg.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(SecretString::from(v.trim())),
                _ => {
                    return Err(AgentError::Config(format!(
                        "the agent needs the environment variable {var} (agent.api_key_env), \
                         which is not set"
                    )))
                }
            },
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AgentError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(OpenAiChat {
            client,
            url: format!(
                "{}/v1/chat/completions",
                cfg.base_url.trim_end_matches('/').trim_end_matches("/v1")
            ),
            token,
            model: cfg.model.clone(),
            system_prompt: cfg.system_prompt.clone(),
            max_tokens: cfg.max_tokens,
            temperature: cfg.temperature,
            send_user: cfg.send_user,
            first_token_timeout: Duration::from_millis(cfg.first_token_timeout_ms),
            total_timeout: Duration::from_millis(cfg.timeout_ms),
            memory: Arc::new(Memory::new(cfg.memory_turns)),
        })
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The model asked for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// This client asking for `model` instead, with the same connection pool and memory.
    pub(crate) fn with_model(&self, model: String) -> OpenAiChat {
        OpenAiChat {
            client: self.client.clone(),
            url: self.url.clone(),
            token: self.token.clone(),
            model,
            system_prompt: self.system_prompt.clone(),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            send_user: self.send_user,
            first_token_timeout: self.first_token_timeout,
            total_timeout: self.total_timeout,
            memory: self.memory.clone(),
        }
    }

    /// Forgets `speaker_id`'s exchanges; how many.
    pub(crate) fn forget_speaker(&self, speaker_id: &str) -> usize {
        self.memory.forget_speaker(speaker_id)
    }

    fn body(&self, request: &AgentRequest) -> Value {
        let system = match &request.language {
            Some(code) => format!(
                "{}\n\nThe speaker's language: `{code}`. Answer in it.",
                self.system_prompt
            ),
            None => self.system_prompt.clone(),
        };
        let mut messages = vec![json!({"role": "system", "content": system})];
        for (user, assistant) in self.memory.history(&request.conversation) {
            messages.push(json!({"role": "user", "content": user}));
            messages.push(json!({"role": "assistant", "content": assistant}));
        }
        messages.push(json!({"role": "user", "content": user_content(request)}));
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        });
        if self.send_user {
            body["user"] = Value::String(hash_user(&request.speaker_id));
        }
        body
    }

    /// Starts a streaming reply.
    pub fn reply(self: Arc<Self>, request: AgentRequest) -> ReplyStream {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let work = self.stream_reply(&request, &tx);
            let result = match tokio::time::timeout(self.total_timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(AgentError::Timeout(format!(
                    "the reply took longer than {} ms",
                    self.total_timeout.as_millis()
                ))),
            };
            match result {
                Ok(full) => self.memory.remember_from(
                    &request.conversation,
                    &request.speaker_id,
                    (user_content(&request), full),
                    &request.withdrawn,
                ),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        rx
    }

    async fn stream_reply(
        &self,
        request: &AgentRequest,
        tx: &mpsc::Sender<Result<String, AgentError>>,
    ) -> Result<String, AgentError> {
        let first_token_deadline = tokio::time::Instant::now() + self.first_token_timeout;
        let mut http = self
            .client
            .post(&self.url)
            .header("accept", "text/event-stream")
            .json(&self.body(request));
        if let Some(token) = &self.token {
            http = http.bearer_auth(token.expose_secret());
        }
        let response = tokio::time::timeout_at(first_token_deadline, http.send())
            .await
            .map_err(|_| {
                AgentError::Timeout(format!(
                    "no response within {} ms",
                    self.first_token_timeout.as_millis()
                ))
            })?
            .map_err(|e| AgentError::Connect {
                url: self.url.clone(),
                reason: without_url(&e),
            })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(AgentError::Http {
                status: status.as_u16(),
                message: error_message(&text),
            });
        }
        // Server-sent events per the WHATWG spec (multi-line `data:`, comments, `\r\n`),
        // parsed by eventsource-stream.
        let mut events = response.bytes_stream().eventsource();
        let mut full = String::new();
        let mut first = true;
        loop {
            let next = if first {
                // Keep-alive comments do not extend the first-token budget.
                match tokio::time::timeout_at(first_token_deadline, events.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(AgentError::Timeout(format!(
                            "no first token within {} ms",
                            self.first_token_timeout.as_millis()
                        )))
                    }
                }
            } else {
                events.next().await
            };
            let Some(event) = next else {
                return Err(AgentError::Stream(
                    "the server closed the stream before `data: [DONE]`".into(),
                ));
            };
            let event = event.map_err(|e| AgentError::Stream(stream_error(&e)))?;
            match parse_event_data(&event.data)? {
                SseEvent::Done => return Ok(full),
                SseEvent::Delta(text) => {
                    first = false;
                    full.push_str(&text);
                    if tx.send(Ok(text)).await.is_err() {
                        // The listener went away (barge-in): stop reading.
                        return Ok(full);
                    }
                }
                SseEvent::Nothing => {}
            }
        }
    }
}

/// An event-stream error without the URL a transport error may carry.
fn stream_error(e: &eventsource_stream::EventStreamError<reqwest::Error>) -> String {
    match e {
        eventsource_stream::EventStreamError::Transport(e) => without_url(e),
        other => other.to_string(),
    }
}

fn user_content(request: &AgentRequest) -> String {
    format!("{}: {}", request.speaker_name, request.text.trim())
}

/// A reqwest error without the URL (which may carry credentials in odd setups).
fn without_url(e: &reqwest::Error) -> String {
    let mut reason = e.to_string();
    if let Some(url) = e.url() {
        reason = reason.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(&format!(": {s}"));
        source = s.source();
    }
    reason
}

/// The server's error text from an OpenAI-style error body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error").and_then(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| e.as_str().map(str::to_owned))
            })
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

#[derive(Debug, PartialEq)]
enum SseEvent {
    Delta(String),
    Done,
    Nothing,
}

/// One event's data (`data:` lines joined) from a chat-completions stream.
fn parse_event_data(data: &str) -> Result<SseEvent, AgentError> {
    let data = data.trim();
    if data.is_empty() {
        return Ok(SseEvent::Nothing);
    }
    if data == "[DONE]" {
        return Ok(SseEvent::Done);
    }
    let v: Value = serde_json::from_str(data)
        .map_err(|e| AgentError::Stream(format!("an event is not JSON: {e}")))?;
    if let Some(err) = v.get("error") {
        return Err(AgentError::Stream(format!(
            "the server sent an error mid-stream: {}",
            error_message(&json!({ "error": err }).to_string())
        )));
    }
    let text = v
        .pointer("/choices/0/delta/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(if text.is_empty() {
        SseEvent::Nothing
    } else {
        SseEvent::Delta(text.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_parses() {
        assert_eq!(
            parse_event_data(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#).unwrap(),
            SseEvent::Delta("Hi".into())
        );
        assert_eq!(parse_event_data("[DONE]").unwrap(), SseEvent::Done);
        assert_eq!(parse_event_data("").unwrap(), SseEvent::Nothing);
        assert_eq!(
            parse_event_data(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#).unwrap(),
            SseEvent::Nothing
        );
        assert!(parse_event_data(r#"{"error":{"message":"overloaded"}}"#)
            .unwrap_err()
            .to_string()
            .contains("overloaded"));
    }

    #[tokio::test]
    async fn events_split_across_chunks_and_lines_join_as_the_spec_says() {
        // One JSON object over two `data:` lines, CRLF endings, a comment, and chunk
        // boundaries inside a line: what a proxy may well produce.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = [
            ": keep-alive\r\n\r\ndata: {\"choices\":[{\"delta\":",
            "\r\ndata: {\"content\":\"Hi\"}}]}\r\n\r",
            "\ndata: [DONE]\r\n\r\n",
        ]
        .into_iter()
        .map(|c| Ok(c.as_bytes().to_vec()))
        .collect();
        let mut events = futures_util::stream::iter(chunks).eventsource();
        let mut parsed = Vec::new();
        while let Some(event) = events.next().await {
            parsed.push(parse_event_data(&event.unwrap().data).unwrap());
        }
        assert_eq!(parsed, vec![SseEvent::Delta("Hi".into()), SseEvent::Done]);
    }

    #[test]
    fn error_bodies_yield_the_api_message() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Invalid API key","type":"auth"}}"#),
            "Invalid API key"
        );
        assert_eq!(error_message("plain"), "plain");
    }

    /// A one-connection-at-a-time HTTP/1.1 server speaking the chat completions streaming
    /// format; `respond` gets the request (head and body) and returns the raw response bytes,
    /// written in pieces with a pause between them.
    async fn fake_server(
        respond: impl Fn(&str) -> Vec<Vec<u8>> + Send + Sync + 'static,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                // Read the head, then the body by Content-Length.
                let request = loop {
                    let n = sock.read(&mut tmp).await.unwrap();
                    if n == 0 {
                        break String::new();
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= head_end + 4 + len {
                            break text;
                        }
                    }
                };
                let _ = tx.send(request.clone());
                for piece in respond(&request) {
                    if sock.write_all(&piece).await.is_err() {
                        break;
                    }
                    let _ = sock.flush().await;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                let _ = sock.shutdown().await;
            }
        });
        (format!("http://{addr}"), rx)
    }

    fn sse_head() -> Vec<u8> {
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n".to_vec()
    }

    fn delta(text: &str) -> Vec<u8> {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        )
        .into_bytes()
    }

    fn agent_config(base_url: &str, key_env: Option<&str>) -> AgentConfig {
        AgentConfig {
            kind: crate::config::AgentKind::OpenaiChat,
            base_url: base_url.to_string(),
            model: "openclaw:main".into(),
            api_key_env: key_env.map(str::to_owned),
            first_token_timeout_ms: 2_000,
            timeout_ms: 5_000,
            ..AgentConfig::default()
        }
    }

    fn request(text: &str) -> AgentRequest {
        AgentRequest {
            conversation: "guild-1/voice-2".into(),
            speaker_id: "123456789".into(),
            speaker_name: "Ann".into(),
            text: text.into(),
            language: None,
            withdrawn: Default::default(),
        }
    }

    async fn collect(mut rx: ReplyStream) -> (String, Option<AgentError>) {
        let mut text = String::new();
        while let Some(item) = rx.recv().await {
            match item {
                Ok(d) => text.push_str(&d),
                Err(e) => return (text, Some(e)),
            }
        }
        (text, None)
    }

    #[tokio::test]
    async fn streams_a_reply_and_remembers_it() {
        std::env::set_var("OPENCLAW_TEST_AGENT_TOKEN_A", "tok-abc-123");
        let (url, mut requests) = fake_server(|_| {
            vec![
                sse_head(),
                b": keep-alive\n\n".to_vec(),
                delta("Paris is the capital. "),
                delta("It is in France."),
                b"data: [DONE]\n\n".to_vec(),
            ]
        })
        .await;
        let chat = Arc::new(
            OpenAiChat::new(&agent_config(&url, Some("OPENCLAW_TEST_AGENT_TOKEN_A"))).unwrap(),
        );
        let (text, err) = collect(chat.clone().reply(request("capital of France?"))).await;
        assert_eq!(err, None);
        assert_eq!(text, "Paris is the capital. It is in France.");
        let first = requests.recv().await.unwrap();
        assert!(
            first.starts_with("POST /v1/chat/completions HTTP/1.1"),
            "{first}"
        );
        assert!(first
            .to_lowercase()
            .contains("authorization: bearer tok-abc-123"));
        let body: Value =
            serde_json::from_str(&first[first.find("\r\n\r\n").unwrap() + 4..]).unwrap();
        assert_eq!(body["model"], "openclaw:main");
        assert_eq!(body["stream"], true);
        assert_eq!(body["user"], hash_user("123456789"));
        assert_eq!(body["messages"][0]["role"], "system");
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert!(
            !system.contains("language"),
            "no language, no line: {system}"
        );
        assert_eq!(body["messages"][1]["content"], "Ann: capital of France?");

        // The second question carries the first exchange as memory.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let french = AgentRequest {
            language: Some("fr".into()),
            ..request("and Spain?")
        };
        let _ = collect(chat.clone().reply(french)).await;
        let second = requests.recv().await.unwrap();
        let body: Value =
            serde_json::from_str(&second[second.find("\r\n\r\n").unwrap() + 4..]).unwrap();
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4, "{body}");
        let system = messages[0]["content"].as_str().unwrap();
        assert!(
            system.ends_with("The speaker's language: `fr`. Answer in it."),
            "the detected language reaches the agent: {system}"
        );
        assert_eq!(
            messages[2]["content"],
            "Paris is the capital. It is in France."
        );
        assert_eq!(messages[3]["content"], "Ann: and Spain?");
    }

    #[tokio::test]
    async fn a_guilds_agent_id_is_the_model_and_memory_is_shared_and_forgettable() {
        let (url, mut requests) =
            fake_server(|_| vec![sse_head(), delta("Done."), b"data: [DONE]\n\n".to_vec()]).await;
        let chat = Arc::new(OpenAiChat::new(&agent_config(&url, None)).unwrap());
        let ops = Arc::new(chat.with_model("openclaw:ops".into()));
        let _ = collect(ops.clone().reply(request("restart the build"))).await;
        let first = requests.recv().await.unwrap();
        let body: Value =
            serde_json::from_str(&first[first.find("\r\n\r\n").unwrap() + 4..]).unwrap();
        assert_eq!(body["model"], "openclaw:ops");
        assert_eq!(body["user"], hash_user("123456789"));
        assert_eq!(body["messages"][1]["content"], "Ann: restart the build");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // One memory behind both models; forgetting the speaker empties it.
        assert_eq!(chat.memory.history("guild-1/voice-2").len(), 1);
        assert_eq!(chat.forget_speaker("123456789"), 1);
        assert!(ops.memory.history("guild-1/voice-2").is_empty());
    }

    #[tokio::test]
    async fn an_error_response_carries_the_servers_message() {
        let (url, _requests) = fake_server(|_| {
            let body = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
            vec![format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()]
        })
        .await;
        let chat = Arc::new(OpenAiChat::new(&agent_config(&url, None)).unwrap());
        let (text, err) = collect(chat.reply(request("hi"))).await;
        assert_eq!(text, "");
        assert_eq!(
            err,
            Some(AgentError::Http {
                status: 401,
                message: "Incorrect API key provided".into()
            })
        );
    }

    #[tokio::test]
    async fn a_stream_cut_short_is_an_error_after_the_text_so_far() {
        let (url, _requests) =
            fake_server(|_| vec![sse_head(), delta("The answer is "), delta("forty")]).await;
        let chat = Arc::new(OpenAiChat::new(&agent_config(&url, None)).unwrap());
        let (text, err) = collect(chat.reply(request("hi"))).await;
        assert_eq!(text, "The answer is forty");
        assert!(
            matches!(err, Some(AgentError::Stream(ref m)) if m.contains("[DONE]")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_at_the_first_token() {
        let (url, _requests) = fake_server(|_| {
            let mut pieces = vec![sse_head()];
            // Only keep-alive comments for a while: no token.
            pieces.extend((0..30).map(|_| b": ping\n\n".to_vec()));
            pieces
        })
        .await;
        let mut cfg = agent_config(&url, None);
        cfg.first_token_timeout_ms = 200;
        let chat = Arc::new(OpenAiChat::new(&cfg).unwrap());
        let started = std::time::Instant::now();
        let (_, err) = collect(chat.reply(request("hi"))).await;
        assert!(matches!(err, Some(AgentError::Timeout(_))), "{err:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let chat = Arc::new(OpenAiChat::new(&agent_config(&url, None)).unwrap());
        let (_, err) = collect(chat.reply(request("hi"))).await;
        assert!(matches!(err, Some(AgentError::Connect { .. })), "{err:?}");
    }

    #[test]
    fn a_missing_token_variable_is_named() {
        let err = OpenAiChat::new(&agent_config(
            "http://127.0.0.1:1",
            Some("OPENCLAW_TEST_UNSET_TOKEN_Z"),
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("OPENCLAW_TEST_UNSET_TOKEN_Z"),
            "{err}"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let s = SecretString::from("sk-very-secret");
        assert!(!format!("{s:?}").contains("sk-very"));
    }
}
