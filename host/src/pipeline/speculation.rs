//! Speculative transcriptions, per speaker: the one started at the speaker's latest pause,
//! and the one thrown away before it while it still decodes.
//!
//! A provider call cannot be stopped once it runs (the plugin ABI is synchronous: a
//! thrown-away speculation decodes to its end in the plugin or its worker), so a speaker's
//! next transcription waits for the thrown-away one instead of decoding beside it: one
//! transcription per speaker at a time, so no second decoder state and no two decodes sharing
//! the cores for one voice; and a speculation thrown away before its turn to decode never
//! runs at all.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;

use super::streaming::SttResult;
use super::turn::SpeculationReport;

/// A transcription under way: its result and when it came.
pub(crate) type SttTask = JoinHandle<(SttResult, Instant)>;

/// Where a transcription is: waiting for the speaker's earlier one, calling the provider, or
/// thrown away before it called (then it never does).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Called,
    Dropped,
}

/// A transcription's phase, shared by its task and the session.
type SharedPhase = Arc<Mutex<Phase>>;

fn lock(phase: &SharedPhase) -> std::sync::MutexGuard<'_, Phase> {
    phase.lock().unwrap_or_else(|p| p.into_inner())
}

/// One speculation: the pause it transcribes, its task and its phase.
struct Speculation {
    pause: u32,
    task: SttTask,
    phase: SharedPhase,
}

/// The speculations of one session, by speaker id.
#[derive(Default)]
pub(crate) struct Speculations {
    running: HashMap<String, Speculation>,
    /// The speaker's last thrown-away speculation, possibly still decoding.
    stale: HashMap<String, SttTask>,
    /// Per speaker: thrown away, and of those, thrown away before they called the provider.
    wasted: HashMap<String, (u32, u32)>,
}

impl Speculations {
    /// Starts `transcribe` for `speaker`'s `pause`, once their thrown-away transcription, if
    /// any, is done; throws away the speculation before it.
    pub(crate) fn start<F>(&mut self, speaker: &str, pause: u32, transcribe: F)
    where
        F: Future<Output = (SttResult, Instant)> + Send + 'static,
    {
        self.discard(speaker);
        let phase = Arc::new(Mutex::new(Phase::Waiting));
        let task = self.after_stale(speaker, phase.clone(), transcribe);
        let speculation = Speculation { pause, task, phase };
        self.running.insert(speaker.to_string(), speculation);
    }

    /// Starts a transcription that is not a speculation (a turn's own), once the speaker's
    /// thrown-away one, if any, is done.
    pub(crate) fn transcribe<F>(&mut self, speaker: &str, transcribe: F) -> SttTask
    where
        F: Future<Output = (SttResult, Instant)> + Send + 'static,
    {
        self.after_stale(speaker, Arc::new(Mutex::new(Phase::Waiting)), transcribe)
    }

    fn after_stale<F>(&mut self, speaker: &str, phase: SharedPhase, transcribe: F) -> SttTask
    where
        F: Future<Output = (SttResult, Instant)> + Send + 'static,
    {
        let before = self.stale.remove(speaker).filter(|t| !t.is_finished());
        tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            {
                let mut now = lock(&phase);
                if *now == Phase::Dropped {
                    // Thrown away before it called: nobody reads this.
                    return (Err(Vec::new()), Instant::now());
                }
                *now = Phase::Called;
            }
            transcribe.await
        })
    }

    /// Throws away the speaker's speculation, if any, counting it as wasted: it never calls
    /// the provider if it has not yet, else it decodes on and the next one waits for it.
    pub(crate) fn discard(&mut self, speaker: &str) {
        if let Some(s) = self.running.remove(speaker) {
            let before_call = {
                let mut now = lock(&s.phase);
                let waiting = *now == Phase::Waiting;
                if waiting {
                    *now = Phase::Dropped;
                }
                waiting
            };
            self.stale.insert(speaker.to_string(), s.task);
            let (wasted, skipped) = self.wasted.entry(speaker.to_string()).or_default();
            *wasted += 1;
            *skipped += u32::from(before_call);
        }
    }

    /// The speculation for `pause`, if one runs; and the turn's report.
    pub(crate) fn take(
        &mut self,
        speaker: &str,
        pause: Option<u32>,
    ) -> (Option<SttTask>, SpeculationReport) {
        let hit = match self.running.remove(speaker) {
            Some(s) if Some(s.pause) == pause => Some(s.task),
            Some(s) => {
                self.running.insert(speaker.to_string(), s);
                self.discard(speaker);
                None
            }
            None => None,
        };
        let (wasted, skipped) = self.wasted.remove(speaker).unwrap_or_default();
        let report = SpeculationReport {
            used: hit.is_some(),
            wasted,
            skipped,
            streamed: false,
        };
        (hit, report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A transcription that takes `ms`, counting how many run at once (`live`, peak in
    /// `peak`) and how many ran (`ran`).
    fn call(
        ms: u64,
        counters: &Arc<[AtomicUsize; 3]>,
    ) -> impl Future<Output = (SttResult, Instant)> + Send + 'static {
        let c = counters.clone();
        async move {
            let now = c[0].fetch_add(1, Ordering::SeqCst) + 1;
            c[1].fetch_max(now, Ordering::SeqCst);
            c[2].fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            c[0].fetch_sub(1, Ordering::SeqCst);
            (Err(Vec::new()), Instant::now())
        }
    }

    /// Calls running now, the most at once, calls run.
    fn counters() -> Arc<[AtomicUsize; 3]> {
        Arc::new([
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        ])
    }

    #[tokio::test]
    async fn a_speakers_transcriptions_never_overlap_and_a_dropped_one_waiting_never_runs() {
        let counters = counters();
        let mut s = Speculations::default();
        // Pause 1 starts; the speaker goes on while it decodes.
        s.start("ann", 1, call(100, &counters));
        tokio::time::sleep(Duration::from_millis(10)).await;
        s.discard("ann");
        // Pause 2 waits for pause 1's call; the speaker goes on again before it starts.
        s.start("ann", 2, call(100, &counters));
        s.discard("ann");
        // Pause 3 waits too, then ends the turn.
        s.start("ann", 3, call(100, &counters));
        let (task, report) = s.take("ann", Some(3));
        let (result, _) = task.expect("pause 3's speculation").await.expect("joins");
        assert!(result.is_err(), "the test call's result");
        assert_eq!(
            counters[1].load(Ordering::SeqCst),
            1,
            "two calls overlapped"
        );
        assert_eq!(
            counters[2].load(Ordering::SeqCst),
            2,
            "pause 2's call never ran"
        );
        assert_eq!((report.used, report.wasted, report.skipped), (true, 2, 1));
    }

    #[tokio::test]
    async fn other_speakers_do_not_wait_and_a_finished_stale_call_is_not_waited_for() {
        let counters = counters();
        let mut s = Speculations::default();
        s.start("ann", 1, call(1_000, &counters));
        tokio::time::sleep(Duration::from_millis(10)).await;
        s.discard("ann");
        s.start("bob", 1, call(1_000, &counters));
        // Both decode at once: Bob waits for nobody's call but his own.
        let deadline = Instant::now() + Duration::from_millis(800);
        while counters[0].load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(counters[1].load(Ordering::SeqCst), 2, "Bob waited for Ann");
        // Once Ann's thrown-away call is over, her turn's own call has nothing to wait for.
        while counters[0].load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(s.stale.get("ann").is_some_and(|t| t.is_finished()));
        let (result, _) = s
            .transcribe("ann", call(1, &counters))
            .await
            .expect("joins");
        assert!(result.is_err(), "the test call's result");
        assert!(s.stale.is_empty());
        let (task, report) = s.take("bob", Some(1));
        assert!(task.is_some() && report.used && report.wasted == 0 && report.skipped == 0);
    }
}
