//! Waiting with a deadline: every test that waits for something (a delivery, the worker,
//! a process starting or stopping) waits through here, so a broken component fails the
//! test with what it was waiting for instead of hanging it.

use std::{
    fmt::Display,
    future::Future,
    time::{Duration, Instant},
};

/// How long a test waits for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often a condition is checked again.
const EVERY: Duration = Duration::from_millis(20);

/// Check `check` until it answers `Ok`, and return that; `Err` carries what it saw,
/// for the message. Panics after `timeout` (counting a check that itself never
/// finishes) with `what` was awaited and the last thing seen.
pub async fn wait_until<T, F, Fut>(what: impl Display, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("nothing yet");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, check()).await {
            Ok(Ok(done)) => return done,
            Ok(Err(seen)) => last = seen,
            Err(_) => panic!("waited {timeout:?} for {what}: a check did not finish ({last})"),
        }
        assert!(
            Instant::now() < deadline,
            "waited {timeout:?} for {what}; last seen: {last}"
        );
        tokio::time::sleep(EVERY).await;
    }
}

/// `future`'s output, or a panic naming `what` after `timeout`.
pub async fn within<T>(
    what: impl Display,
    timeout: Duration,
    future: impl Future<Output = T>,
) -> T {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("waited {timeout:?} for {what}"))
}

/// `wait_until` for code that cannot await (it blocks the thread between checks).
pub fn wait_blocking<T>(
    what: impl Display,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(done) => return done,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "waited {timeout:?} for {what}; last seen: {last}"
        );
        std::thread::sleep(EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_met_in_time_returns_its_value() {
        let mut n = 0;
        let got = wait_until("n to reach 3", WAIT, || {
            n += 1;
            let n = n;
            async move {
                if n >= 3 {
                    Ok(n)
                } else {
                    Err(format!("n = {n}"))
                }
            }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waited 100ms for the impossible; last seen: still no")]
    async fn a_condition_never_met_fails_with_what_was_awaited() {
        wait_until("the impossible", Duration::from_millis(100), || async {
            Err::<(), _>("still no".to_owned())
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "waited 100ms for a stuck check: a check did not finish")]
    async fn a_check_that_never_finishes_fails_too() {
        wait_until("a stuck check", Duration::from_millis(100), || {
            std::future::pending::<Result<(), String>>()
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "waited 50ms for a channel")]
    async fn within_bounds_one_await() {
        let (_tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        within("a channel", Duration::from_millis(50), rx.recv()).await;
    }

    #[test]
    #[should_panic(expected = "waited 50ms for a file; last seen: absent")]
    fn wait_blocking_fails_with_what_was_awaited() {
        wait_blocking("a file", Duration::from_millis(50), || {
            Err::<(), _>("absent".to_owned())
        });
    }
}
