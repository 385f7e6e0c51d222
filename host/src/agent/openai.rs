//! The `openai-chat` agent: streaming `POST {base_url}/v1/chat/completions` (server-sent
//! events), as the OpenClaw gateway, OpenAI and Ollama speak it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{hash_user, AgentError, AgentRequest, Memory, ReplyStream};
use crate::config::AgentConfig;

/// A bearer token; never printed.
#[derive(Clone)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A client for an OpenAI-compatible chat server.
#[derive(Debug)]
pub struct OpenAiChat {
    client: reqwest::Client,
    url: String,
    token: Option<Secret>,
    model: String,
    system_prompt: String,
    max_tokens: u32,
    temperature: f64,
    send_user: bool,
    first_token_timeout: Duration,
    total_timeout: Duration,
    memory: Memory,
}

impl OpenAiChat {
    /// Builds the client; reads the token from `api_key_env` if one is named.
    pub fn new(cfg: &AgentConfig) -> Result<Self, AgentError> {
        let token = match &cfg.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(Secret(v.trim().to_string())),
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
            memory: Memory::new(cfg.memory_turns),
        })
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn body(&self, request: &AgentRequest) -> Value {
        let mut messages = vec![json!({"role": "system", "content": self.system_prompt})];
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
                Ok(full) => {
                    self.memory
                        .remember(&request.conversation, user_content(&request), full)
                }
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
        let mut http = self
            .client
            .post(&self.url)
            .header("accept", "text/event-stream")
            .json(&self.body(request));
        if let Some(token) = &self.token {
            http = http.bearer_auth(&token.0);
        }
        let response = tokio::time::timeout(self.first_token_timeout, http.send())
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
        let mut bytes = response.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut full = String::new();
        let mut first = true;
        loop {
            let next = if first {
                match tokio::time::timeout(self.first_token_timeout, bytes.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(AgentError::Timeout(format!(
                            "no first token within {} ms",
                            self.first_token_timeout.as_millis()
                        )))
                    }
                }
            } else {
                bytes.next().await
            };
            let Some(chunk) = next else {
                return Err(AgentError::Stream(
                    "the server closed the stream before `data: [DONE]`".into(),
                ));
            };
            let chunk = chunk.map_err(|e| AgentError::Stream(without_url(&e)))?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                match parse_sse_line(line.trim_end_matches(['\r', '\n']))? {
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

fn parse_sse_line(line: &str) -> Result<SseEvent, AgentError> {
    let Some(data) = line.strip_prefix("data:") else {
        return Ok(SseEvent::Nothing); // comments, `event:`, blank separators
    };
    let data = data.trim();
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
    fn sse_lines_parse() {
        assert_eq!(
            parse_sse_line(r#"data: {"choices":[{"delta":{"content":"Hi"}}]}"#).unwrap(),
            SseEvent::Delta("Hi".into())
        );
        assert_eq!(parse_sse_line("data: [DONE]").unwrap(), SseEvent::Done);
        assert_eq!(parse_sse_line(": keep-alive").unwrap(), SseEvent::Nothing);
        assert_eq!(
            parse_sse_line(r#"data: {"choices":[{"delta":{"role":"assistant"}}]}"#).unwrap(),
            SseEvent::Nothing
        );
        assert!(
            parse_sse_line(r#"data: {"error":{"message":"overloaded"}}"#)
                .unwrap_err()
                .to_string()
                .contains("overloaded")
        );
    }

    #[test]
    fn error_bodies_yield_the_api_message() {
        assert_eq!(
            error_message(r#"{"error":{"message":"Invalid API key","type":"auth"}}"#),
            "Invalid API key"
        );
        assert_eq!(error_message("plain"), "plain");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let s = Secret("sk-very-secret".into());
        assert!(!format!("{s:?}").contains("sk-very"));
    }
}
