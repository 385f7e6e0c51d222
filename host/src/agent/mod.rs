//! The agent: turns what a speaker said into a reply, streamed as text deltas.
//!
//! `echo` repeats the transcript (offline, no account). `openai-chat` streams
//! `/v1/chat/completions` from any OpenAI-compatible server — the OpenClaw gateway
//! (`model = "openclaw:<agentId>"`), OpenAI, Ollama — with a system prompt, per-conversation
//! memory, and the OpenAI `user` field set per speaker so the gateway keeps a session.

mod openai;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, AgentKind};
pub use openai::OpenAiChat;

/// One question for the agent.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    /// Conversation key: a voice channel, or the simulation.
    pub conversation: String,
    /// Stable speaker id (hashed before it leaves the host).
    pub speaker_id: String,
    /// Display name, shown to the agent.
    pub speaker_name: String,
    /// What was said.
    pub text: String,
    /// The language it was said in (a code such as `fr`): detected by speech-to-text, else
    /// the configured one; the reply should be in it. `None`: unknown.
    pub language: Option<String>,
    /// Cancelled when the turn is withdrawn (the speaker went on, and the next question holds
    /// this one): the exchange then leaves the conversation memory. `Default` for a request
    /// that is never withdrawn.
    pub withdrawn: CancellationToken,
}

/// Why the agent could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The server answered with an error status.
    #[error("agent server answered HTTP {status}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The server's own error text.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the agent server at {url}: {reason}")]
    Connect {
        /// The URL tried (no credentials).
        url: String,
        /// Why.
        reason: String,
    },
    /// No first token, or no completion, in time.
    #[error("the agent did not answer in time: {0}")]
    Timeout(String),
    /// The stream was malformed or ended early.
    #[error("the agent's reply stream broke: {0}")]
    Stream(String),
    /// The agent could not be set up.
    #[error("agent configuration: {0}")]
    Config(String),
}

impl AgentError {
    /// A short, bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AgentError::Http { .. } => "http",
            AgentError::Connect { .. } => "connect",
            AgentError::Timeout(_) => "timeout",
            AgentError::Stream(_) => "stream",
            AgentError::Config(_) => "config",
        }
    }
}

/// Reply text deltas, in order; the channel closes when the reply is complete.
pub(crate) type ReplyStream = mpsc::Receiver<Result<String, AgentError>>;

/// One remembered exchange: the speaker's id, what they said, the reply, and the token that
/// withdraws it.
type Exchange = (String, String, String, CancellationToken);

/// Past exchanges, per conversation.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    turns: Mutex<HashMap<String, VecDeque<Exchange>>>,
    capacity: usize,
}

impl Memory {
    pub(crate) fn new(capacity: usize) -> Self {
        Memory {
            turns: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub(crate) fn history(&self, conversation: &str) -> Vec<(String, String)> {
        let turns = match self.turns.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        turns
            .get(conversation)
            .map(|q| {
                q.iter()
                    .filter(|(_, _, _, withdrawn)| !withdrawn.is_cancelled())
                    .map(|(_, u, a, _)| (u.clone(), a.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Keeps an exchange of `speaker`'s (the oldest goes beyond the capacity), until
    /// `withdrawn` is cancelled.
    pub(crate) fn remember_from(
        &self,
        conversation: &str,
        speaker: &str,
        (user, assistant): (String, String),
        withdrawn: &CancellationToken,
    ) {
        if self.capacity == 0 || assistant.trim().is_empty() || withdrawn.is_cancelled() {
            return;
        }
        let mut turns = match self.turns.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        let q = turns.entry(conversation.to_string()).or_default();
        q.retain(|(_, _, _, withdrawn)| !withdrawn.is_cancelled());
        q.push_back((speaker.to_string(), user, assistant, withdrawn.clone()));
        while q.len() > self.capacity {
            q.pop_front();
        }
    }
}

impl Memory {
    /// Removes every exchange of `speaker`'s, in every conversation; how many.
    pub(crate) fn forget_speaker(&self, speaker: &str) -> usize {
        let mut turns = match self.turns.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        let mut removed = 0;
        for q in turns.values_mut() {
            let before = q.len();
            q.retain(|(who, _, _, _)| who != speaker);
            removed += before - q.len();
        }
        removed
    }
}

/// The configured agent.
#[derive(Clone)]
pub enum Agent {
    /// Repeats what it heard.
    Echo,
    /// An OpenAI-compatible chat server.
    OpenAiChat(Arc<OpenAiChat>),
}

impl Agent {
    /// Builds the agent from config; the token is read from its variable now.
    pub fn from_config(cfg: &AgentConfig) -> Result<Agent, AgentError> {
        match cfg.kind {
            AgentKind::Echo => Ok(Agent::Echo),
            AgentKind::OpenaiChat => Ok(Agent::OpenAiChat(Arc::new(OpenAiChat::new(cfg)?))),
        }
    }

    /// `echo` or `openai-chat`.
    pub fn kind(&self) -> &'static str {
        match self {
            Agent::Echo => "echo",
            Agent::OpenAiChat(_) => "openai-chat",
        }
    }

    /// The same agent answering as `model` (a guild's own OpenClaw agent,
    /// `openclaw:<agentId>`), sharing the connection and the conversation memory.
    pub(crate) fn with_model(&self, model: Option<String>) -> Agent {
        match (self, model) {
            (Agent::OpenAiChat(chat), Some(model)) if model != chat.model() => {
                Agent::OpenAiChat(Arc::new(chat.with_model(model)))
            }
            _ => self.clone(),
        }
    }

    /// Forgets what `speaker_id` said (conversation memory); how many exchanges.
    pub(crate) fn forget_speaker(&self, speaker_id: &str) -> usize {
        match self {
            Agent::Echo => 0,
            Agent::OpenAiChat(chat) => chat.forget_speaker(speaker_id),
        }
    }

    /// Starts a reply; deltas arrive on the returned channel.
    pub fn reply(&self, request: AgentRequest) -> ReplyStream {
        match self {
            Agent::Echo => {
                const DELTAS: usize = 64;
                let (tx, rx) = mpsc::channel(DELTAS);
                let text = format!("You said: {}", request.text.trim());
                // Word by word, as a streaming agent would send it; a reply of more words than
                // the channel holds goes in groups of words, so none is lost.
                let words: Vec<&str> = text.split_inclusive(' ').collect();
                for group in words.chunks(words.len().div_ceil(DELTAS).max(1)) {
                    let sent = tx.try_send(Ok(group.concat()));
                    debug_assert!(sent.is_ok(), "at most {DELTAS} deltas are sent");
                }
                rx
            }
            Agent::OpenAiChat(chat) => chat.clone().reply(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_streams_the_transcript_back() {
        let agent = Agent::Echo;
        let mut rx = agent.reply(AgentRequest {
            conversation: "c".into(),
            speaker_id: "1".into(),
            speaker_name: "Ann".into(),
            text: "what time is it".into(),
            language: None,
            withdrawn: CancellationToken::new(),
        });
        let mut text = String::new();
        let mut deltas = 0;
        while let Some(d) = rx.recv().await {
            text.push_str(&d.unwrap());
            deltas += 1;
        }
        assert_eq!(text, "You said: what time is it");
        assert!(deltas > 1);
    }

    #[tokio::test]
    async fn echo_keeps_every_word_of_a_long_reply() {
        let long: Vec<String> = (0..500).map(|i| format!("w{i}")).collect();
        let mut rx = Agent::Echo.reply(AgentRequest {
            conversation: "c".into(),
            speaker_id: "1".into(),
            speaker_name: "Ann".into(),
            text: long.join(" "),
            language: Some("en".into()),
            withdrawn: CancellationToken::new(),
        });
        let mut text = String::new();
        while let Some(d) = rx.recv().await {
            text.push_str(&d.unwrap());
        }
        assert_eq!(text, format!("You said: {}", long.join(" ")));
    }

    #[test]
    fn memory_keeps_the_last_turns_per_conversation() {
        let kept = CancellationToken::new();
        let m = Memory::new(2);
        for i in 0..3 {
            m.remember_from("a", "s", (format!("q{i}"), format!("a{i}")), &kept);
        }
        m.remember_from("b", "s", ("x".into(), "y".into()), &kept);
        let h = m.history("a");
        assert_eq!(
            h,
            vec![("q1".into(), "a1".into()), ("q2".into(), "a2".into())]
        );
        assert_eq!(m.history("b").len(), 1);
    }

    #[test]
    fn forgetting_a_speaker_removes_only_their_exchanges() {
        let kept = CancellationToken::new();
        let m = Memory::new(8);
        m.remember_from("a", "ann", ("q1".into(), "a1".into()), &kept);
        m.remember_from("a", "bob", ("q2".into(), "a2".into()), &kept);
        m.remember_from("b", "ann", ("q3".into(), "a3".into()), &kept);
        assert_eq!(m.forget_speaker("ann"), 2);
        assert_eq!(m.history("a"), vec![("q2".into(), "a2".into())]);
        assert!(m.history("b").is_empty());
    }

    #[test]
    fn a_withdrawn_exchange_leaves_the_memory_whenever_it_was_remembered() {
        let m = Memory::new(8);
        let (kept, fragment, late) = (
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        m.remember_from("a", "ann", ("q1".into(), "a1".into()), &kept);
        m.remember_from("a", "ann", ("how many".into(), "sixty".into()), &fragment);
        fragment.cancel();
        late.cancel();
        m.remember_from("a", "ann", ("what is".into(), "it".into()), &late);
        m.remember_from(
            "a",
            "ann",
            ("how many in a week".into(), "10080".into()),
            &kept,
        );
        assert_eq!(
            m.history("a"),
            vec![
                ("q1".into(), "a1".into()),
                ("how many in a week".into(), "10080".into())
            ]
        );
    }
}
