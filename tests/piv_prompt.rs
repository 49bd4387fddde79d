//! The PIN prompt on a terminal does not echo. `script` (util-linux) gives
//! keyward a pseudo-terminal; whatever the terminal echoes comes back in
//! script's output, so a typed PIN must not appear there.

mod common;
mod piv_support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{require_rig, start_sim};
use piv_support::*;

#[test]
#[ignore = "needs the test rig: pcscd + vpcd (scripts/test runs it)"]
fn pin_prompt_does_not_echo() {
    require_rig();
    let sim = start_sim(&["--piv", "--firmware", "5.7.1"]);
    let cmd = format!(
        "{} piv change-pin --device '{}'",
        env!("CARGO_BIN_EXE_keyward"),
        sim.reader.name
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let s2 = Arc::clone(&seen);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            s2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    // Answer each prompt only once it is shown (echo is off from then on).
    for (prompt, answer) in [
        ("PIN: ", "123456\n"),
        ("new PIN: ", "97531864\n"),
        ("new PIN again: ", "97531864\n"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.lock().unwrap().contains(prompt) {
            assert!(
                Instant::now() < deadline,
                "no {prompt:?} in {:?}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        stdin.write_all(answer.as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let text = seen.lock().unwrap().clone();
    eprintln!("{text:?}");
    assert!(text.contains("PIN changed"), "{text}");
    assert!(
        !text.contains("123456") && !text.contains("97531864"),
        "echoed: {text}"
    );
    assert_eq!(info(&sim)["pin_is_default"], false);
}
