//! One test per rule; every expected output was produced by Node 20's
//! `JSON.stringify(JSON.parse(input))`.

use super::{CanonicalError, MAX_DEPTH, canonicalize, write_js_string};

#[track_caller]
fn canon(input: &str) -> String {
    let out = canonicalize(input.as_bytes())
        .unwrap_or_else(|e| panic!("{input:?} should canonicalize: {e}"))
        .into_string();
    let again = canonicalize(out.as_bytes()).expect("canonical output parses again");
    assert_eq!(
        again.as_str(),
        out,
        "output of {input:?} is not a fixed point"
    );
    out
}

#[track_caller]
fn refused(input: &str) -> CanonicalError {
    match canonicalize(input.as_bytes()) {
        Ok(out) => panic!("{input:?} should be refused, got {:?}", out.as_str()),
        Err(e) => e,
    }
}

#[track_caller]
fn syntax_offset(input: &str) -> usize {
    match refused(input) {
        CanonicalError::Syntax { offset, .. } => offset,
        other => panic!("{input:?}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn array_index_keys_come_first_in_ascending_order() {
    assert_eq!(
        canon(r#"{"b":1,"a":2,"1":3,"0":4}"#),
        r#"{"0":4,"1":3,"b":1,"a":2}"#
    );
    assert_eq!(
        canon(r#"{"10":1,"9":2,"4294967294":3,"4294967295":4,"01":5,"-1":6,"1.0":7,"":8}"#),
        r#"{"9":2,"10":1,"4294967294":3,"4294967295":4,"01":5,"-1":6,"1.0":7,"":8}"#
    );
}

#[test]
fn duplicate_key_keeps_first_position_and_last_value() {
    assert_eq!(canon(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
    assert_eq!(canon(r#"{"1":1,"a":2,"1":3}"#), r#"{"1":3,"a":2}"#);
    assert_eq!(canon(r#"{"a":1,"b":2,"\u0061":3}"#), r#"{"a":3,"b":2}"#);
}

#[test]
fn whitespace_is_removed_and_nesting_kept() {
    assert_eq!(
        canon(" [ 1 , { \"a\" : [ ] , \"b\" : { } } , \"x\" ]\r\n\t"),
        r#"[1,{"a":[],"b":{}},"x"]"#
    );
    assert_eq!(canon("[true,false,null]"), "[true,false,null]");
    assert_eq!(
        canon(r#"{"__proto__":{"a":1},"constructor":null}"#),
        r#"{"__proto__":{"a":1},"constructor":null}"#
    );
}

#[test]
fn numbers_print_as_javascript_number_to_string() {
    let cases = [
        ("1.0", "1"),
        ("1e3", "1000"),
        ("1E+2", "100"),
        ("1e-7", "1e-7"),
        ("0.0000001", "1e-7"),
        ("0.000001", "0.000001"),
        ("1e21", "1e+21"),
        ("1e21", "1e+21"),
        ("9007199254740991.0", "9007199254740991"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("0.1", "0.1"),
        ("5e-324", "5e-324"),
        ("1e-400", "0"),
        ("-1.5e-10", "-1.5e-10"),
        ("123456789.125", "123456789.125"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("9007199254740991", "9007199254740991"),
        ("-9007199254740991", "-9007199254740991"),
    ];
    for (input, expected) in cases {
        assert_eq!(canon(input), expected, "input {input}");
    }
}

#[test]
fn strings_escape_only_quote_backslash_and_controls() {
    assert_eq!(canon(r#""\/""#), r#""/""#);
    assert_eq!(
        canon(r#""\u0000\u0001\u001f\b\t\n\f\r\"\\""#),
        r#""\u0000\u0001\u001f\b\t\n\f\r\"\\""#
    );
    assert_eq!(
        canon(r#""\u007f\u0080\u2028\u2029""#),
        "\"\u{7f}\u{80}\u{2028}\u{2029}\""
    );
    assert_eq!(canon(r#""\u00e9\u00E9""#), r#""éé""#);
    assert_eq!(canon("\"😀 café 日本\""), "\"😀 café 日本\"");
}

#[test]
fn surrogate_pair_escapes_become_the_character() {
    assert_eq!(canon(r#""\ud83d\ude00\uD83D\uDE00""#), r#""😀😀""#);
    assert_eq!(canon(r#"{"\ud83d\ude00":1}"#), r#"{"😀":1}"#);
}

#[test]
fn write_js_string_escapes_like_json_stringify() {
    let mut out = String::from("x");
    write_js_string(&mut out, "a\"b\\c\u{0}\u{1f}\u{7f}/\u{2028}é");
    assert_eq!(out, "x\"a\\\"b\\\\c\\u0000\\u001f\u{7f}/\u{2028}é\"");
}

#[test]
fn unsafe_integers_are_refused_with_their_path() {
    let err = refused(r#"{"order":{"id":12345678901234567890}}"#);
    assert_eq!(
        err,
        CanonicalError::UnsafeInteger {
            path: "order.id".into(),
            literal: "12345678901234567890".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "integer 12345678901234567890 at order.id is outside ±(2^53−1) and would change in \
         JavaScript receivers; send it as a string"
    );
    for literal in [
        "9007199254740992",
        "-9007199254740992",
        "100000000000000000000000000000",
    ] {
        assert!(
            matches!(refused(literal), CanonicalError::UnsafeInteger { .. }),
            "{literal}"
        );
    }
}

#[test]
fn numbers_javascript_prints_as_unsafe_integers_are_refused() {
    let err = refused(r#"{"n":[1e20]}"#);
    assert_eq!(
        err,
        CanonicalError::UnsafeIntegerValue {
            path: "n[0]".into(),
            literal: "1e20".into(),
            javascript: "100000000000000000000".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "number 1e20 at n[0] would be sent as the integer 100000000000000000000, outside \
         ±(2^53−1) where JavaScript integers lose precision; send it as a string"
    );
    for literal in [
        "9007199254740992.0",
        "-1e16",
        "12345678901234567890.5",
        "9.99e20",
    ] {
        assert!(
            matches!(refused(literal), CanonicalError::UnsafeIntegerValue { .. }),
            "{literal}"
        );
    }
}

#[test]
fn large_numbers_javascript_prints_with_an_exponent_are_accepted() {
    assert_eq!(canon("1e30"), "1e+30");
    assert_eq!(canon("-1.5e300"), "-1.5e+300");
    assert_eq!(canon("4503599627370495.5"), "4503599627370495.5");
}

#[test]
fn paths_use_javascript_accessors() {
    let path = |input: &str| refused(input).path().map(str::to_owned);
    assert_eq!(path("[1e999]").as_deref(), Some("[0]"));
    assert_eq!(
        path(r#"{"order":{"items":[0,1,{"amount":1e999}]}}"#).as_deref(),
        Some("order.items[2].amount")
    );
    assert_eq!(
        path(r#"{"content-type":[1e999]}"#).as_deref(),
        Some(r#"["content-type"][0]"#)
    );
    assert_eq!(
        path(r#"{"a":{"2x":{"_$ok":1e999}}}"#).as_deref(),
        Some(r#"a["2x"]._$ok"#)
    );
    assert_eq!(path("1e999").as_deref(), Some(""));
}

#[test]
fn path_prefix_reroots_errors() {
    let prefixed = |input: &str| refused(input).with_path_prefix("data");
    assert_eq!(
        prefixed(r#"{"id":9007199254740993}"#).path(),
        Some("data.id")
    );
    assert_eq!(prefixed("[9007199254740993]").path(), Some("data[0]"));
    assert_eq!(prefixed("9007199254740993").path(), Some("data"));
    assert!(prefixed("[1,]").path().is_none());
}

#[test]
fn numbers_overflowing_to_infinity_are_refused() {
    let err = refused(r#"{"x":-1e400}"#);
    assert_eq!(
        err,
        CanonicalError::NumberOutOfRange {
            path: "x".into(),
            literal: "-1e400".into()
        }
    );
    assert!(
        err.to_string()
            .contains("JavaScript receivers would read null"),
        "{err}"
    );
}

#[test]
fn unpaired_surrogate_escapes_are_refused() {
    for (input, offset, in_member_name) in [
        (r#"{"a":"x\ud800"}"#, 7, false),
        (r#"{"a":"\udc00\ud800"}"#, 6, false),
        (r#"{"a":"\ud800\u0041"}"#, 6, false),
        (r#"{"a":{"\ud83d":1}}"#, 7, true),
    ] {
        let err = refused(input);
        assert_eq!(
            err,
            CanonicalError::LoneSurrogate {
                path: "a".into(),
                offset,
                in_member_name
            },
            "{input}"
        );
    }
    assert_eq!(
        refused(r#""\ud800""#).to_string(),
        "unpaired surrogate escape at byte 1 (in the string at the top level) cannot be sent \
         as UTF-8; remove it or send a complete surrogate pair"
    );
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(canon(&nested(MAX_DEPTH)), nested(MAX_DEPTH));
    let err = refused(&nested(MAX_DEPTH + 1));
    let expected_path = "[0]".repeat(MAX_DEPTH);
    assert_eq!(
        err,
        CanonicalError::TooDeep {
            path: expected_path
        }
    );
    assert!(matches!(
        refused(&"{\"a\":".repeat(MAX_DEPTH + 1)),
        CanonicalError::TooDeep { .. }
    ));
}

#[test]
fn syntax_errors_report_the_offset() {
    let cases = [
        ("", 0),
        ("   ", 3),
        ("[1,]", 3),
        (r#"{"a":1,}"#, 7),
        ("[1 2]", 3),
        ("01", 0),
        ("-01", 0),
        ("+1", 0),
        (".5", 0),
        ("1.", 2),
        ("1e", 2),
        ("1e+", 3),
        ("-", 1),
        ("NaN", 0),
        ("Infinity", 0),
        ("-Infinity", 1),
        ("True", 0),
        ("nul", 0),
        ("'a'", 0),
        (r#"{a:1}"#, 1),
        (r#"{"a" 1}"#, 5),
        (
            r#"{"a":1 // c
        }"#,
            7,
        ),
        ("/* c */ 1", 0),
        ("1 2", 2),
        ("\u{feff}1", 0),
        ("\"abc", 0),
        ("\"a\u{1}\"", 2),
        ("\"a\nb\"", 2),
        (r#""\x""#, 1),
        (r#""\u12G4""#, 1),
        (r#""\u12""#, 1),
        ("[\u{a0}1]", 1),
    ];
    for (input, offset) in cases {
        assert_eq!(syntax_offset(input), offset, "input {input:?}");
    }
}

#[test]
fn invalid_utf8_is_a_syntax_error() {
    let err = canonicalize(b"\"a\xff\"").expect_err("invalid UTF-8");
    assert_eq!(
        err,
        CanonicalError::Syntax {
            offset: 2,
            message: "input is not valid UTF-8; send JSON encoded as UTF-8".into()
        }
    );
}

#[test]
fn syntax_messages_say_what_to_fix() {
    assert_eq!(
        refused("[1,]").to_string(),
        "invalid JSON at byte 3: trailing comma before ']'; remove it"
    );
    assert_eq!(
        refused("01").to_string(),
        "invalid JSON at byte 0: numbers must not have leading zeros"
    );
    assert_eq!(
        refused("\"a\tb\"").to_string(),
        "invalid JSON at byte 2: raw control character U+0009 in a string; escape it (e.g. \\n \
         or \\u0009)"
    );
}

#[test]
fn syntax_errors_win_over_refusals() {
    assert_eq!(syntax_offset("[1e400,]"), 7);
    assert_eq!(syntax_offset(r#"["\ud800", 01]"#), 11);
    assert_eq!(syntax_offset(r#""\ud83d\de00""#), 7);
    assert_eq!(syntax_offset("9007199254740993 x"), 17);
}

#[test]
fn the_first_refusal_is_reported() {
    assert_eq!(
        refused(r#"[1, {"b": "\udc00"}, 9007199254740993]"#),
        CanonicalError::LoneSurrogate {
            path: "[1].b".into(),
            offset: 11,
            in_member_name: false
        }
    );
}
