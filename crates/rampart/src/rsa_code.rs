//! Which of OpenSSL's RSA code paths signs DKIM (`[dkim] openssl_rsa`).
//!
//! An RSA-2048 signature is two 1024-bit modular exponentiations, and OpenSSL has two x86-64
//! implementations of them: one on MULX/ADX instructions and one on AVX2. Wherever the CPU
//! has ADX it takes the MULX code, which is the faster on Intel CPUs; on the AMD CPU of the
//! benchmarks the AVX2 code signed 10–20% faster (0.685 against 0.85 ms under the outbound
//! load, bench/results.md), and signing is the largest share of the server's CPU on outbound
//! mail. OpenSSL fixes its choice when libcrypto is loaded, from the CPU and the
//! `OPENSSL_ia32cap` environment variable, so another choice takes a process started with that
//! variable set.
//!
//! So `serve`, before anything else (no thread, listener or log file yet), times OpenSSL's
//! default on this CPU, starts itself again (`exec`, the same process id) with ADX hidden from
//! OpenSSL, times the AVX2 code there, and keeps it when it was the faster; otherwise it starts
//! itself once more as it was. Where the two measure close, either is as good. Those few
//! milliseconds and one or two `exec`s are the whole cost; the outcome is logged once logging
//! is up. An `OPENSSL_ia32cap` the administrator set is left alone.
//!
//! Hiding ADX changes only which of OpenSSL's own constant-time implementations runs: the
//! signatures are the same bytes. rustls does not use OpenSSL (ring), so TLS is unaffected.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use openssl::bn::{BigNum, BigNumContext, MsbOption};
use rampart_config::OpensslRsa;

/// OpenSSL's CPU capability override (`man 3 OPENSSL_ia32cap`).
const CAPS: &str = "OPENSSL_ia32cap";
/// Bit 19 of the third capability word (ADX) cleared: OpenSSL's RSA then uses its AVX2 code.
const HIDE_ADX: &str = ":~0x80000";
/// What the first process measured, for the next one: "trial:NANOS" while the AVX2 code is on
/// trial, "kept:DEFAULT:AVX2" after the trial lost.
const TRIAL: &str = "RAMPART_OPENSSL_RSA_TRIAL";

/// What was chosen, logged once logging is up.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `openssl_rsa = "default"`, or not an x86-64 CPU with both code paths.
    NotMeasured(&'static str),
    /// The administrator's `OPENSSL_ia32cap`.
    Environment(String),
    /// The AVX2 code, with both timings of one signature's exponentiations.
    Avx2 { default: Duration, avx2: Duration },
    /// OpenSSL's default, with both timings.
    Default { default: Duration, avx2: Duration },
    /// A restart failed: the code this process runs stays.
    Failed(String),
}

impl std::fmt::Display for Outcome {
    /// Reads after "DKIM signs with".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        match self {
            Outcome::NotMeasured(why) => write!(f, "OpenSSL's default RSA code ({why})"),
            Outcome::Environment(v) => write!(f, "the RSA code {CAPS}={v} in the environment selects"),
            Outcome::Avx2 { default, avx2 } => write!(
                f,
                "OpenSSL's AVX2 RSA code: {:.3} ms a signature against {:.3} ms for its default",
                ms(avx2),
                ms(default)
            ),
            Outcome::Default { default, avx2 } => write!(
                f,
                "OpenSSL's default RSA code: {:.3} ms a signature against {:.3} ms for its AVX2 code",
                ms(default),
                ms(avx2)
            ),
            Outcome::Failed(why) => write!(f, "the RSA code it started with: {why}"),
        }
    }
}

/// The next step of the choice, decided from the environment and a measurement.
#[derive(Debug, PartialEq)]
pub enum Step {
    Done(Outcome),
    /// Start this program again with these variables set (`Some`) or removed (`None`).
    Restart(Vec<(&'static str, Option<String>)>),
}

/// What the CPU offers: the choice exists only with both AVX2 and ADX.
pub fn cpu_has_both() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("adx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One step: `trial` and `caps` are this process's variables, `measure` times the code it runs.
pub fn step(mode: OpensslRsa, trial: Option<&str>, caps: Option<&str>, both: bool, measure: impl FnOnce() -> Duration) -> Step {
    match trial {
        None => {
            if let Some(v) = caps {
                return Step::Done(Outcome::Environment(v.to_string()));
            }
            if mode == OpensslRsa::Default {
                return Step::Done(Outcome::NotMeasured("openssl_rsa = \"default\""));
            }
            if !both {
                return Step::Done(Outcome::NotMeasured("the CPU has no second RSA code path"));
            }
            let default = measure();
            Step::Restart(vec![(CAPS, Some(HIDE_ADX.to_string())), (TRIAL, Some(format!("trial:{}", default.as_nanos())))])
        }
        Some(v) => {
            let nanos = |s: &str| s.parse::<u64>().ok().map(Duration::from_nanos);
            if let Some(default) = v.strip_prefix("trial:").and_then(nanos) {
                let avx2 = measure();
                if avx2 < default {
                    return Step::Done(Outcome::Avx2 { default, avx2 });
                }
                return Step::Restart(vec![(CAPS, None), (TRIAL, Some(format!("kept:{}:{}", default.as_nanos(), avx2.as_nanos())))]);
            }
            if let Some((d, a)) = v.strip_prefix("kept:").and_then(|s| s.split_once(':'))
                && let (Some(default), Some(avx2)) = (nanos(d), nanos(a))
            {
                return Step::Done(Outcome::Default { default, avx2 });
            }
            Step::Done(Outcome::Failed(format!("{TRIAL}={v} is not ours")))
        }
    }
}

/// One RSA-2048 signature's exponentiations on the code this process runs: the best of a few
/// pairs of 1024-bit exponentiations with a secret (constant-time) exponent, the operation
/// the choice is about. Random numbers: nothing secret is involved.
pub fn measure() -> Duration {
    let run = || -> Result<Duration, openssl::error::ErrorStack> {
        let mut ctx = BigNumContext::new()?;
        let (mut m, mut p, mut a, mut r) = (BigNum::new()?, BigNum::new()?, BigNum::new()?, BigNum::new()?);
        // A 1024-bit odd modulus, a full-size exponent and base: OpenSSL takes its RSA code
        // (and the AVX2 one when allowed) only for exactly these sizes.
        m.rand(1024, MsbOption::ONE, true)?;
        p.rand(1024, MsbOption::ONE, false)?;
        p.set_const_time();
        a.rand(1023, MsbOption::ONE, false)?;
        let mut best = Duration::MAX;
        // The first pairs warm the code and the caches; the best of all is the speed (a
        // process's time is only ever lengthened by what else the machine does).
        for _ in 0..16 {
            let t = Instant::now();
            r.mod_exp(&a, &p, &m, &mut ctx)?;
            r.mod_exp(&a, &p, &m, &mut ctx)?;
            best = best.min(t.elapsed());
        }
        Ok(best)
    };
    run().unwrap_or(Duration::MAX)
}

/// Chooses (see the module doc); returns only in the process that stays. Call before any
/// thread exists.
pub fn choose(mode: OpensslRsa) -> Outcome {
    let var = |k| std::env::var(k).ok();
    let (trial, caps) = (var(TRIAL), var(CAPS));
    match step(mode, trial.as_deref(), caps.as_deref(), cpu_has_both(), measure) {
        Step::Done(outcome) => {
            if trial.is_some() {
                // SAFETY: no other thread exists yet (see the caller), so nothing reads the
                // environment concurrently.
                unsafe { std::env::remove_var(TRIAL) };
            }
            outcome
        }
        Step::Restart(vars) => Outcome::Failed(restart(&vars)),
    }
}

/// Replaces this process by the same program with the same arguments; returns the error.
fn restart(vars: &[(&'static str, Option<String>)]) -> String {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("rampart"));
    // /proc/self/exe: this very program, even when its file was replaced since it started.
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0(arg0).args(args);
    for (k, v) in vars {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    format!("restarting to switch OpenSSL's RSA code: {}", cmd.exec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_administrators_variable_and_the_default_mode_are_left_alone() {
        let never = || panic!("measured");
        assert_eq!(step(OpensslRsa::Measure, None, Some(":~0x0"), true, never), Step::Done(Outcome::Environment(":~0x0".into())));
        assert!(matches!(step(OpensslRsa::Default, None, None, true, never), Step::Done(Outcome::NotMeasured(_))));
        assert!(matches!(step(OpensslRsa::Measure, None, None, false, never), Step::Done(Outcome::NotMeasured(_))));
    }

    #[test]
    fn the_avx2_code_is_kept_only_when_faster() {
        // First process: measures the default and restarts with ADX hidden.
        let Step::Restart(vars) = step(OpensslRsa::Measure, None, None, true, || ms(10)) else { panic!() };
        assert_eq!(vars, vec![(CAPS, Some(HIDE_ADX.to_string())), (TRIAL, Some("trial:10000000".to_string()))]);
        // Trial process, faster: stays.
        assert_eq!(
            step(OpensslRsa::Measure, Some("trial:10000000"), Some(HIDE_ADX), true, || ms(6)),
            Step::Done(Outcome::Avx2 { default: ms(10), avx2: ms(6) })
        );
        // Not faster: back to the default, carrying both timings.
        let back = step(OpensslRsa::Measure, Some("trial:10000000"), Some(HIDE_ADX), true, || ms(10));
        assert_eq!(back, Step::Restart(vec![(CAPS, None), (TRIAL, Some("kept:10000000:10000000".to_string()))]));
        // The restarted process: done, without measuring again.
        assert_eq!(
            step(OpensslRsa::Measure, Some("kept:10000000:12000000"), None, true, || panic!("measured")),
            Step::Done(Outcome::Default { default: ms(10), avx2: ms(12) })
        );
    }

    #[test]
    fn a_foreign_trial_value_changes_nothing() {
        assert!(matches!(step(OpensslRsa::Measure, Some("x"), None, true, || panic!("measured")), Step::Done(Outcome::Failed(_))));
    }

    #[test]
    fn the_measurement_times_real_exponentiations() {
        let t = measure();
        assert!(t > Duration::ZERO && t < Duration::from_secs(1), "{t:?}");
    }
}

