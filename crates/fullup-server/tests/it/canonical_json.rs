//! `canonicalize` against real Node: every input goes to one `node` process running
//! `JSON.stringify(JSON.parse(x))` (`node_canon.js`), and our bytes must equal Node's.
//!
//! Three groups share the one batch: a hand-written corpus of tricky inputs, proptest-
//! generated JSON texts (whitespace, escapes, surrogate pairs, integer-like and duplicate
//! keys, numbers in many spellings), and those texts mutated by one character, which checks
//! that we reject exactly what `JSON.parse` rejects. Inputs we refuse on purpose (unsafe
//! integers, unpaired surrogates, overflow, depth) must be ones Node accepts.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use fullup_server::domain::canonical_json::{CanonicalError, MAX_DEPTH, canonicalize};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// Generated valid texts per run, and generated texts with one character mutated.
const GENERATED: usize = 2500;
const MUTATED: usize = 1500;

/// What the corpus expects of an input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Node accepts it and we print the same bytes.
    Same,
    /// Node's `JSON.parse` throws, and we return a syntax error.
    Syntax,
    /// Node accepts it; we refuse it on purpose with this kind of error.
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Refusal {
    UnsafeInteger,
    UnsafeIntegerValue,
    LoneSurrogate,
    NumberOutOfRange,
    TooDeep,
}

fn refusal(error: &CanonicalError) -> Option<Refusal> {
    Some(match error {
        CanonicalError::UnsafeInteger { .. } => Refusal::UnsafeInteger,
        CanonicalError::UnsafeIntegerValue { .. } => Refusal::UnsafeIntegerValue,
        CanonicalError::LoneSurrogate { .. } => Refusal::LoneSurrogate,
        CanonicalError::NumberOutOfRange { .. } => Refusal::NumberOutOfRange,
        CanonicalError::TooDeep { .. } => Refusal::TooDeep,
        _ => return None,
    })
}

fn corpus() -> Vec<(String, Expect)> {
    use Expect::{Refused, Same, Syntax};
    use Refusal::*;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let (deepest, too_deep) = (nested(MAX_DEPTH), nested(MAX_DEPTH + 1));
    let cases: Vec<(&str, Expect)> = vec![
        (r#"{"b":1,"a":2,"1":3,"0":4}"#, Same),
        (r#"{"a":1,"b":2,"a":3}"#, Same),
        (r#"{"1":1,"a":2,"1":3}"#, Same),
        (r#"{"a":1,"b":2,"a":3,"b":4,"c":5,"a":6}"#, Same),
        (r#"{"a":{"z":1,"y":2},"a":{"x":3}}"#, Same),
        (
            r#"{"10":1,"9":2,"4294967294":3,"4294967295":4,"4294967296":5,"01":6,"-1":7,"1.0":8,"":9,"1e3":10}"#,
            Same,
        ),
        (r#"{"3":0,"2":0,"1":0,"0":0}"#, Same),
        (r#"{"\u0031":1,"0":2,"1":3}"#, Same),
        (r#"{"a\nb":1,"a\u000ab":2,"":3,"":4}"#, Same),
        (
            r#"{"__proto__":{"a":1},"__proto__":null,"toString":1,"constructor":2}"#,
            Same,
        ),
        ("[]", Same),
        ("{}", Same),
        ("[[],{},[{}]]", Same),
        (" \t\n\r[ 1 ,\n2 ,\t{ \"a\" : [ ] } ]\r\n", Same),
        ("true", Same),
        ("null", Same),
        ("\"x\"", Same),
        ("0", Same),
        ("-1", Same),
        (r#"["\/","a\/b"]"#, Same),
        (r#""\u0000\u0001\u0007\u000b\u000e\u001f""#, Same),
        (r#""\b\f\n\r\t\"\\""#, Same),
        (r#""\u0008\u000C\u000a\u005C\u0022\u002F""#, Same),
        (r#""\u007f\u0080\u009f\u00a0""#, Same),
        (r#""\u2028\u2029""#, Same),
        ("\"\u{2028}\u{2029}\u{7f}\"", Same),
        ("\"😀\"", Same),
        (
            r#"["\ud83d\ude00","\uD83D\uDE00","\udbff\udfff","\ud800\udc00"]"#,
            Same,
        ),
        (r#"["\uFEFF","\uffff","\ufffe","\u00e9","e\u0301"]"#, Same),
        ("\"é e\u{301} 日本語 \u{10ffff}\"", Same),
        (
            "[1.0,1e3,1E3,1e+3,1E-3,1e-7,1e21,1e-6,0.000001,-0,-0.0,0e10,-0e-5]",
            Same,
        ),
        (
            "[0.1,0.2,0.30000000000000004,5e-324,2.2250738585072014e-308,1.7976931348623157e308]",
            Same,
        ),
        (
            "[1e-400,-1e-400,123456789012345.67,9007199254740991,-9007199254740991,1.5e300]",
            Same,
        ),
        (
            "[100,1e2,0.5e1,12.34e-5,123.456e2,1e0,-1E-0,1e+21,999999999999999999999.5]",
            Same,
        ),
        (
            "[9007199254740991.0,4503599627370495.5,0.1e1,10e-1,1e-323,4.9e-324,2.5e-324]",
            Same,
        ),
        (&deepest, Same),
        (
            r#""mixed \"quotes\" \\ \/ \t tabs \u00e9 \ud83c\udf89 end""#,
            Same,
        ),
        ("[1,]", Syntax),
        (r#"{"a":1,}"#, Syntax),
        ("[01]", Syntax),
        ("[-01]", Syntax),
        ("[+1]", Syntax),
        ("[.5]", Syntax),
        ("[1.]", Syntax),
        ("[1e]", Syntax),
        ("[1e+]", Syntax),
        ("[-]", Syntax),
        ("[0x10]", Syntax),
        ("[1_000]", Syntax),
        ("NaN", Syntax),
        ("Infinity", Syntax),
        ("-Infinity", Syntax),
        ("True", Syntax),
        ("'a'", Syntax),
        ("{a:1}", Syntax),
        ("// c\n1", Syntax),
        ("/* c */ 1", Syntax),
        ("1 2", Syntax),
        ("\u{feff}1", Syntax),
        ("\"abc", Syntax),
        ("\"a\tb\"", Syntax),
        (r#""\x41""#, Syntax),
        (r#""\U0041""#, Syntax),
        (r#""\u12""#, Syntax),
        ("[1 2]", Syntax),
        (r#"{"a" 1}"#, Syntax),
        ("", Syntax),
        ("   ", Syntax),
        ("[\u{a0}1]", Syntax),
        ("[1]]", Syntax),
        (r#"{"a":1}}"#, Syntax),
        (r#"{"id":12345678901234567890}"#, Refused(UnsafeInteger)),
        ("[9007199254740992]", Refused(UnsafeInteger)),
        ("[-9007199254740993]", Refused(UnsafeInteger)),
        ("[1e20]", Refused(UnsafeIntegerValue)),
        ("[9007199254740993.0]", Refused(UnsafeIntegerValue)),
        (r#""\ud800""#, Refused(LoneSurrogate)),
        (r#""\udc00\ud800""#, Refused(LoneSurrogate)),
        (r#""\ud800\u0041""#, Refused(LoneSurrogate)),
        (r#"{"\udfff":1}"#, Refused(LoneSurrogate)),
        ("[1e400]", Refused(NumberOutOfRange)),
        ("[-1e309]", Refused(NumberOutOfRange)),
        (&too_deep, Refused(TooDeep)),
    ];
    cases
        .into_iter()
        .map(|(input, expect)| (input.to_owned(), expect))
        .collect()
}

#[test]
fn canonical_json_matches_node() {
    if !fullup_testkit::require_tool("node", &[], "canonical_json_matches_node") {
        return;
    }
    let mut cases = corpus();
    assert!(cases.len() >= 60, "the corpus holds {} cases", cases.len());
    let generated = generate(json_text(), GENERATED);
    let mutated = generate(mutated_text(), MUTATED);
    cases.extend(generated.into_iter().map(|text| (text, Expect::Same)));
    let mutated_from = cases.len();
    cases.extend(mutated.into_iter().map(|text| (text, Expect::Same)));

    let inputs: Vec<String> = cases.iter().map(|(input, _)| input.clone()).collect();
    let answers = run_node(&inputs);
    assert_eq!(answers.len(), inputs.len(), "node answered every input");

    let mut failures = Vec::new();
    for (i, ((input, expect), node)) in cases.iter().zip(&answers).enumerate() {
        let ours = canonicalize(input.as_bytes());
        let verdict = if i >= mutated_from {
            check_mutated(&ours, node)
        } else {
            check(*expect, &ours, node)
        };
        if let Err(why) = verdict.and_then(|()| check_fixed_point(&ours)) {
            failures.push(format!("input {input:?}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs disagree with node; first ones:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}

type Ours = Result<fullup_server::domain::canonical_json::CanonicalJson, CanonicalError>;

fn check(expect: Expect, ours: &Ours, node: &Result<String, String>) -> Result<(), String> {
    match (expect, ours, node) {
        (Expect::Same, Ok(ours), Ok(node)) if ours.as_str() == node => Ok(()),
        (Expect::Syntax, Err(CanonicalError::Syntax { .. }), Err(_)) => Ok(()),
        (Expect::Refused(kind), Err(e), Ok(_)) if refusal(e) == Some(kind) => Ok(()),
        _ => Err(format!("expected {expect:?}; ours {ours:?}, node {node:?}")),
    }
}

/// A mutated text may be anything: Node and we must agree on syntax, and agree on the
/// bytes unless we refuse on purpose.
fn check_mutated(ours: &Ours, node: &Result<String, String>) -> Result<(), String> {
    match (ours, node) {
        (Ok(ours), Ok(node)) if ours.as_str() == node => Ok(()),
        (Err(CanonicalError::Syntax { .. }), Err(_)) => Ok(()),
        (Err(e), Ok(_)) if refusal(e).is_some() => Ok(()),
        _ => Err(format!("ours {ours:?}, node {node:?}")),
    }
}

fn check_fixed_point(ours: &Ours) -> Result<(), String> {
    let Ok(out) = ours else { return Ok(()) };
    match canonicalize(out.as_bytes()) {
        Ok(again) if again == *out => Ok(()),
        other => Err(format!(
            "output {:?} is not a fixed point: {other:?}",
            out.as_str()
        )),
    }
}

/// Sends every input to one `node node_canon.js` and returns its answers in order.
fn run_node(inputs: &[String]) -> Vec<Result<String, String>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/node_canon.js");
    let mut child = Command::new("node")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let lines: String = inputs
        .iter()
        .map(|input| ascii_json_string(input) + "\n")
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let answers = stdout
        .lines()
        .map(|line| parse_answer(&line.expect("node output is UTF-8")));
    let answers: Vec<_> = answers.collect();
    writer
        .join()
        .expect("writer thread")
        .expect("write to node");
    assert!(
        child.wait().expect("node exits").success(),
        "node_canon.js failed"
    );
    answers
}

fn parse_answer(line: &str) -> Result<String, String> {
    let answer: serde_json::Value = serde_json::from_str(line).expect("node answers JSON");
    match (answer.get("ok"), answer.get("err")) {
        (Some(serde_json::Value::String(ok)), _) => Ok(ok.clone()),
        (_, Some(err)) => Err(err.to_string()),
        _ => panic!("unexpected node answer {line}"),
    }
}

/// A JSON string literal using only printable ASCII, so each input is exactly one line.
fn ascii_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

fn generate<S: Strategy<Value = String>>(strategy: S, count: usize) -> Vec<String> {
    let mut runner = TestRunner::new(Config::default());
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generate a JSON text")
                .current()
        })
        .collect()
}

/// A generated text with one character deleted, duplicated, or inserted.
fn mutated_text() -> impl Strategy<Value = String> {
    let inserts = vec![
        '[', ']', '{', '}', ',', ':', '"', '\\', ' ', '0', '1', '-', '+', '.', 'e', 'u', 'd', 't',
        '\u{0}', '\u{a0}',
    ];
    (
        json_text(),
        any::<prop::sample::Index>(),
        0..3u8,
        prop::sample::select(inserts),
    )
        .prop_map(|(text, at, operation, insert)| {
            let mut chars: Vec<char> = text.chars().collect();
            let at = at.index(chars.len() + 1);
            match operation {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 if at < chars.len() => chars.insert(at, chars[at]),
                _ => chars.insert(at, insert),
            }
            chars.into_iter().collect()
        })
}

fn json_text() -> impl Strategy<Value = String> {
    (whitespace(), json_value(), whitespace()).prop_map(|(a, v, b)| format!("{a}{v}{b}"))
}

fn whitespace() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => proptest::collection::vec(prop::sample::select(vec![" ", "\t", "\n", "\r"]), 1..4)
            .prop_map(|ws| ws.concat()),
    ]
}

fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        1 => prop::sample::select(vec!["null", "true", "false"]).prop_map(str::to_owned),
        3 => number(),
        3 => any::<String>().prop_flat_map(spelled_string),
        2 => tricky_string().prop_flat_map(spelled_string),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        let item = (whitespace(), inner.clone(), whitespace());
        let spaced_value = (whitespace(), inner.clone(), whitespace());
        let member = (
            whitespace(),
            key().prop_flat_map(spelled_string),
            whitespace(),
            spaced_value,
        );
        prop_oneof![
            proptest::collection::vec(item, 0..6).prop_map(|items| {
                let items: Vec<String> = items.into_iter().map(|(a, v, b)| a + &v + &b).collect();
                format!("[{}]", items.join(","))
            }),
            proptest::collection::vec(member, 0..6).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(a, k, b, (c, v, d))| format!("{a}{k}{b}:{c}{v}{d}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Member names that exercise JavaScript's property order and duplicate handling.
fn key() -> impl Strategy<Value = String> {
    let names = vec![
        "a",
        "b",
        "c",
        "0",
        "1",
        "2",
        "10",
        "01",
        "-1",
        "1.5",
        "4294967294",
        "4294967295",
        "4294967296",
        "__proto__",
        "constructor",
        "",
        "é",
        "😀",
        "a b",
        "\n",
    ];
    prop_oneof![
        4 => prop::sample::select(names).prop_map(str::to_owned),
        1 => (0u32..=u32::MAX).prop_map(|n| n.to_string()),
        1 => any::<String>(),
    ]
}

fn tricky_string() -> impl Strategy<Value = String> {
    let chars = vec![
        '"',
        '\\',
        '/',
        '\u{0}',
        '\u{8}',
        '\t',
        '\n',
        '\u{b}',
        '\u{c}',
        '\r',
        '\u{1f}',
        '\u{7f}',
        '\u{80}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{ffff}',
        'é',
        '😀',
        '\u{10ffff}',
        'a',
    ];
    proptest::collection::vec(prop::sample::select(chars), 0..12)
        .prop_map(|chars| chars.into_iter().collect())
}

/// A JSON string literal for `s`, each character written raw or escaped at random.
fn spelled_string(s: String) -> impl Strategy<Value = String> {
    let n = s.chars().count();
    proptest::collection::vec(any::<u8>(), n..=n).prop_map(move |modes| {
        let mut out = String::from("\"");
        for (c, mode) in s.chars().zip(modes) {
            spell_char(&mut out, c, mode);
        }
        out.push('"');
        out
    })
}

fn spell_char(out: &mut String, c: char, mode: u8) {
    let short = match c {
        '"' => Some('"'),
        '\\' => Some('\\'),
        '/' => Some('/'),
        '\u{8}' => Some('b'),
        '\u{c}' => Some('f'),
        '\n' => Some('n'),
        '\r' => Some('r'),
        '\t' => Some('t'),
        _ => None,
    };
    let must_escape = matches!(c, '"' | '\\' | '\u{0}'..='\u{1f}');
    match (mode % 4, short) {
        (0, _) if !must_escape => out.push(c),
        (1, Some(short)) => {
            out.push('\\');
            out.push(short);
        }
        _ => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let escape = if mode.is_multiple_of(2) {
                    format!("\\u{unit:04x}")
                } else {
                    format!("\\u{unit:04X}")
                };
                out.push_str(&escape);
            }
        }
    }
}

/// Number literals in many spellings, all finite and free of unsafe integers.
fn number() -> impl Strategy<Value = String> {
    const MAX_SAFE: i64 = (1 << 53) - 1;
    let spelled = prop_oneof![
        (-MAX_SAFE..=MAX_SAFE).prop_map(|n| n.to_string()),
        (-1000i64..1000).prop_map(|n| n.to_string()),
        Just("-0".to_owned()),
        (any::<bool>(), 0u32..100_000, "[0-9]{1,8}")
            .prop_map(|(neg, int, frac)| { format!("{}{int}.{frac}", if neg { "-" } else { "" }) }),
        (
            any::<bool>(),
            "[1-9](\\.[0-9]{1,6})?|0\\.[0-9]{1,6}",
            prop::sample::select(vec!["e", "E"]),
            prop::sample::select(vec!["", "+", "-"]),
            0u32..330,
        )
            .prop_map(|(neg, mantissa, e, sign, exp)| {
                format!("{}{mantissa}{e}{sign}{exp}", if neg { "-" } else { "" })
            }),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| format!("{x:e}")),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| format!("{x:?}")),
    ];
    spelled.prop_filter("finite and not an unsafe integer value", |literal| {
        let x: f64 = literal.parse().expect("generated literal parses");
        x.is_finite() && !(x.fract() == 0.0 && x.abs() > MAX_SAFE as f64 && x.abs() < 1e21)
    })
}
