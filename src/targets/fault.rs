//! Fault points for tests: with the `fault-injection` feature, `TOKEN_ROTATOR_PAUSE_AT=STEP`
//! pauses a change at that step (so a test can SIGKILL it there, or resume it once
//! `TOKEN_ROTATOR_RESUME_FILE` exists), and `TOKEN_ROTATOR_FAIL_AT=STEP` makes the step
//! fail in-process. Without the feature every point is a no-op.

/// A failure injected at a step.
#[derive(Debug, thiserror::Error)]
#[error("failure injected at {0} (TOKEN_ROTATOR_FAIL_AT)")]
pub struct Injected(pub &'static str);

/// Pauses or fails at `step` when asked to.
#[cfg(feature = "fault-injection")]
pub async fn point(step: &'static str) -> Result<(), Injected> {
    if std::env::var("TOKEN_ROTATOR_FAIL_AT").as_deref() == Ok(step) {
        eprintln!("FAULT-INJECTED {step}");
        return Err(Injected(step));
    }
    if std::env::var("TOKEN_ROTATOR_PAUSE_AT").as_deref() == Ok(step) {
        eprintln!("FAULT-POINT {step}");
        let resume = std::env::var_os("TOKEN_ROTATOR_RESUME_FILE");
        loop {
            if resume
                .as_ref()
                .is_some_and(|f| std::path::Path::new(f).exists())
            {
                eprintln!("FAULT-RESUMED {step}");
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Without the `fault-injection` feature: never pauses, never fails.
#[cfg(not(feature = "fault-injection"))]
pub async fn point(_step: &'static str) -> Result<(), Injected> {
    Ok(())
}
