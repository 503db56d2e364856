//! `fullup secret new`, `fullup sign` and `fullup verify` as a user runs them: real
//! process, secrets from the environment or a file, bodies from a file or stdin, and
//! the exit codes 0 valid / 1 mismatch / 2 error.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use fullup_signature::Secret;

/// GitHub's published example of the same construction.
const SECRET: &str = "It's a Secret to Everybody";
const BODY: &[u8] = b"Hello, World!";
const SIGNATURE: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

/// Runs `fullup` with only the given secret-related environment, feeding `stdin`.
fn fullup(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args(args)
        .env_remove("FULLUP_SECRET")
        .env_remove("FULLUP_SECRET_FILE")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the fullup binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    // A command that fails before reading stdin closes it; that is not a test failure.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("fullup runs to completion")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("fullup exits normally")
}

/// Exit code 2 with exactly one line on stderr, which is returned.
fn error_line(output: &Output) -> String {
    assert_eq!(code(output), 2, "stderr: {}", stderr(output));
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "one-line reason expected: {err:?}");
    err
}

fn temp_file(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(contents).expect("write temp file");
    file
}

fn path(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().expect("temp paths are UTF-8")
}

#[test]
fn secret_new_prints_fresh_standard_webhooks_secrets() {
    let first = fullup(&["secret", "new"], &[], b"");
    let second = fullup(&["secret", "new"], &[], b"");
    for output in [&first, &second] {
        assert_eq!(code(output), 0, "stderr: {}", stderr(output));
        let line = stdout(output);
        let secret = line.strip_suffix('\n').expect("one line");
        assert!(
            secret.starts_with("whsec_") && secret.len() == 50,
            "{secret}"
        );
        assert!(Secret::parse(secret).is_ok());
    }
    assert_ne!(stdout(&first), stdout(&second));
}

#[test]
fn sign_uses_fullup_secret_and_a_body_file() {
    let body = temp_file(BODY);
    let output = fullup(&["sign", path(&body)], &[("FULLUP_SECRET", SECRET)], b"");
    assert_eq!(code(&output), 0, "stderr: {}", stderr(&output));
    assert_eq!(stdout(&output), format!("{SIGNATURE}\n"));
}

#[test]
fn sign_reads_stdin_for_dash_or_no_file() {
    for args in [&["sign", "-"][..], &["sign"]] {
        let output = fullup(args, &[("FULLUP_SECRET", SECRET)], BODY);
        assert_eq!(stdout(&output), format!("{SIGNATURE}\n"), "{args:?}");
    }
}

#[test]
fn sign_reads_a_named_variable() {
    let args = ["sign", "--secret-env", "MY_HOOK_SECRET"];
    let output = fullup(
        &args,
        &[("MY_HOOK_SECRET", SECRET), ("FULLUP_SECRET", "other")],
        BODY,
    );
    assert_eq!(stdout(&output), format!("{SIGNATURE}\n"));
}

#[test]
fn secret_file_loses_one_trailing_newline_only() {
    for contents in [
        format!("{SECRET}\n"),
        format!("{SECRET}\r\n"),
        SECRET.to_owned(),
    ] {
        let file = temp_file(contents.as_bytes());
        let output = fullup(&["sign", "--secret-file", path(&file)], &[], BODY);
        assert_eq!(stdout(&output), format!("{SIGNATURE}\n"), "{contents:?}");
    }
    let file = temp_file(format!("{SECRET}\n\n").as_bytes());
    let err = error_line(&fullup(&["sign", "--secret-file", path(&file)], &[], BODY));
    assert!(
        err.contains("--secret-file") && err.contains("whitespace"),
        "{err}"
    );
}

#[test]
fn secret_errors_name_what_to_fix_without_showing_the_secret() {
    let err = error_line(&fullup(&["sign"], &[], BODY));
    assert!(
        err.contains("FULLUP_SECRET") && err.contains("--secret-file"),
        "{err}"
    );
    let err = error_line(&fullup(&["sign"], &[("FULLUP_SECRET", " hunter2")], BODY));
    assert!(
        err.contains("FULLUP_SECRET") && !err.contains("hunter2"),
        "{err}"
    );
    let err = error_line(&fullup(
        &["sign", "--secret-file", "/nonexistent/secret"],
        &[],
        BODY,
    ));
    assert!(err.contains("--secret-file /nonexistent/secret"), "{err}");
}

/// Regression: `--secret-env` said "Repeatable" but `sign` refused a second one.
#[test]
fn sign_with_two_secrets_prints_a_signature_for_each_in_flag_order() {
    let old = temp_file(b"old secret\n");
    let args = [
        "sign",
        "--secret-file",
        path(&old),
        "--secret-env",
        "A",
        "--secret-env",
        "B",
    ];
    let output = fullup(&args, &[("A", SECRET), ("B", "another secret")], BODY);
    assert_eq!(code(&output), 0, "stderr: {}", stderr(&output));
    let expected: Vec<String> = [SECRET, "another secret", "old secret"]
        .iter()
        .map(|s| fullup_signature::sign(&Secret::parse(s).expect("secret"), BODY).to_string())
        .collect();
    assert_eq!(expected[0], SIGNATURE);
    assert_eq!(stdout(&output), format!("{}\n", expected.join("\n")));
}

#[test]
fn verify_exits_0_for_a_valid_signature() {
    let body = temp_file(BODY);
    let upper = SIGNATURE.to_ascii_uppercase();
    for args in [
        &["verify", "--signature", SIGNATURE, path(&body)][..],
        &["verify", "--signature", &upper],
    ] {
        let output = fullup(args, &[("FULLUP_SECRET", SECRET)], BODY);
        assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), "valid (secret #1)\n");
    }
}

#[test]
fn verify_exits_1_on_mismatch_with_one_line_reason() {
    let output = fullup(
        &["verify", "--signature", SIGNATURE, "-"],
        &[("FULLUP_SECRET", SECRET)],
        b"Hello, World",
    );
    assert_eq!(code(&output), 1);
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("matches no configured secret"), "{err}");
}

#[test]
fn verify_exits_2_on_errors() {
    let env = [("FULLUP_SECRET", SECRET)];
    let err = error_line(&fullup(
        &["verify", "--signature", &SIGNATURE[..63]],
        &env,
        BODY,
    ));
    assert!(
        err.contains("--signature") && err.contains("fewer than 64 hex digits"),
        "{err}"
    );
    let err = error_line(&fullup(
        &["verify", "--signature", SIGNATURE, "/nonexistent/body"],
        &env,
        b"",
    ));
    assert!(err.contains("/nonexistent/body"), "{err}");
    let err = error_line(&fullup(&["verify", "--signature", SIGNATURE], &[], BODY));
    assert!(err.contains("FULLUP_SECRET"), "{err}");
}

#[test]
fn verify_accepts_rotated_secrets_and_says_which_matched() {
    let old = temp_file(b"old secret\n");
    let args = [
        "verify",
        "--signature",
        SIGNATURE,
        "--secret-file",
        path(&old),
        "--secret-env",
        "NEW",
    ];
    let output = fullup(&args, &[("NEW", SECRET)], BODY);
    assert_eq!(code(&output), 0, "stderr: {}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "valid (secret #1)\n",
        "--secret-env values come first"
    );
    let args = [
        "verify",
        "--signature",
        SIGNATURE,
        "--secret-env",
        "OLD",
        "--secret-env",
        "NEW",
    ];
    let output = fullup(&args, &[("OLD", "old"), ("NEW", SECRET)], BODY);
    assert_eq!(stdout(&output), "valid (secret #2)\n");
}
