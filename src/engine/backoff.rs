//! One exponential backoff, shared by every retry loop (engine operations, API probes,
//! the daemon's retries of a rotation).

use std::time::Duration;

/// Delays that start at `first` and double up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff whose first delay is `first`, doubling to at most `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The delay to wait now; the following one is twice as long (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Starts again from the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// `every`, shortened by up to 10% so that many sidecars do not probe in step.
pub fn jittered(every: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = f64::from(nanos % 1000) / 1000.0;
    every.mul_f64(1.0 - 0.1 * fraction)
}

/// Runs `op`, retrying it with backoff (0.25 s doubling to 5 s) while the engine cannot be
/// reached, for up to `window` (an engine restart takes seconds). Answers from the engine
/// are returned as they are.
pub async fn retrying<T, Fut>(
    window: Duration,
    what: &str,
    mut op: impl FnMut() -> Fut,
) -> Result<T, bollard::errors::Error>
where
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    let started = std::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        match op().await {
            Err(e) if super::is_transport(&e) && started.elapsed() < window => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    retry_in_ms = delay.as_millis() as u64,
                    "could not {what}, retrying: {}",
                    super::describe(&e)
                );
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(600));
        let got: Vec<u64> = (0..9).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(5));
    }
}
