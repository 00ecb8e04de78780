//! The SMTP command parser on arbitrary bytes: must never panic, and what it accepts must
//! print back to something it accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp_proto::command::{Command, ForwardPath, ReversePath, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(cmd) = parse(data) else { return };
    // A parsed address, written out again, parses to the same address: what policy and the
    // Received header see is what the client sent.
    match cmd {
        Command::Mail { from: ReversePath::Mailbox(m), .. } => {
            let again = parse(format!("MAIL FROM:<{m}>").as_bytes());
            assert!(matches!(again, Ok(Command::Mail { from: ReversePath::Mailbox(ref n), .. }) if *n == m), "{m}");
        }
        Command::Rcpt { to: ForwardPath::Mailbox(m), .. } => {
            let again = parse(format!("RCPT TO:<{m}>").as_bytes());
            assert!(matches!(again, Ok(Command::Rcpt { to: ForwardPath::Mailbox(ref n), .. }) if *n == m), "{m}");
        }
        _ => {}
    }
});
