//! The old request, `{"url": "...", "user_id": "..."}`, read as the old
//! FastAPI service read it, and its refusals in FastAPI's shapes: a body
//! that is not JSON, or not the model, is a 422 whose `detail` is a list of
//! `{"type", "loc", "msg", "input"[, "ctx"]}` (pydantic 2's errors without
//! their URL), fields in that order. Fields beyond the two are ignored, as
//! pydantic's default model ignored them: an old app that sent more kept
//! working, and keeps working here.

use serde::Serialize;
use serde_json::Value;

/// What the request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldRequest {
    pub url: String,
    /// Who the old app says the job is for; None when left out (or null).
    pub user_id: Option<String>,
}

/// One entry of FastAPI's 422 `detail` list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

/// Why a body could not be read at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Unreadable {
    /// 422 with these problems.
    Invalid(Vec<Problem>),
    /// Not text: FastAPI's 400 "There was an error parsing the body".
    NotText,
}

/// The body as FastAPI takes it before anything else (before the token):
/// JSON when the Content-Type says JSON or says nothing, the raw text
/// otherwise; None when empty.
pub fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Option<Value>, Unreadable> {
    if body.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(body).map_err(|_| Unreadable::NotText)?;
    if !content_type.is_none_or(is_json) {
        return Ok(Some(Value::String(text.to_string())));
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Unreadable::Invalid(vec![json_problem(&e, text)]))
}

/// `application/json`, or any `application/…+json`, parameters aside.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// The fields: `url` a string; `user_id` a string, or absent/null unless
/// `user_required` (a caller without a token names the user).
pub fn validate(body: Option<Value>, user_required: bool) -> Result<OldRequest, Vec<Problem>> {
    let Some(body) = body else {
        return Err(vec![missing(&["body"], Value::Null)]);
    };
    let Value::Object(fields) = &body else {
        return Err(vec![Problem {
            kind: "model_attributes_type",
            loc: loc(&["body"]),
            msg: "Input should be a valid dictionary or object to extract fields from".into(),
            input: body,
            ctx: None,
        }]);
    };
    let mut problems = Vec::new();
    let url = match fields.get("url") {
        None => {
            problems.push(missing(&["body", "url"], body.clone()));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(not_a_string("url", other));
            None
        }
    };
    let user_id = match fields.get("user_id") {
        Some(Value::String(s)) => Some(s.clone()),
        None if user_required => {
            problems.push(missing(&["body", "user_id"], body.clone()));
            None
        }
        None => None,
        // An optional field may be null; a required one may not.
        Some(Value::Null) if !user_required => None,
        Some(other) => {
            problems.push(not_a_string("user_id", other));
            None
        }
    };
    match (url, problems.is_empty()) {
        (Some(url), true) => Ok(OldRequest { url, user_id }),
        _ => Err(problems),
    }
}

fn loc(parts: &[&str]) -> Vec<Value> {
    parts.iter().map(|p| Value::String(p.to_string())).collect()
}

fn missing(at: &[&str], input: Value) -> Problem {
    Problem {
        kind: "missing",
        loc: loc(at),
        msg: "Field required".into(),
        input,
        ctx: None,
    }
}

fn not_a_string(field: &str, input: &Value) -> Problem {
    Problem {
        kind: "string_type",
        loc: loc(&["body", field]),
        msg: "Input should be a valid string".into(),
        input: input.clone(),
        ctx: None,
    }
}

/// FastAPI's entry for a body that is not JSON: `loc` names the character
/// where the decoder stopped, `ctx.error` says why in Python's words (for
/// the mistakes people make; serde's words otherwise).
fn json_problem(e: &serde_json::Error, text: &str) -> Problem {
    let full = e.to_string();
    let said = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(what, _)| what);
    let python = [
        ("EOF while parsing a value", "Expecting value"),
        ("expected value", "Expecting value"),
        ("expected ident", "Expecting value"),
        ("invalid number", "Expecting value"),
        (
            "EOF while parsing a string",
            "Unterminated string starting at",
        ),
        ("expected `:`", "Expecting ':' delimiter"),
        ("expected `,` or `}`", "Expecting ',' delimiter"),
        ("expected `,` or `]`", "Expecting ',' delimiter"),
        ("EOF while parsing an object", "Expecting ',' delimiter"),
        ("EOF while parsing a list", "Expecting ',' delimiter"),
        (
            "key must be a string",
            "Expecting property name enclosed in double quotes",
        ),
        (
            "trailing comma",
            "Illegal trailing comma before end of object",
        ),
        ("trailing characters", "Extra data"),
        ("invalid escape", "Invalid \\escape"),
    ]
    .iter()
    .find(|(serde, _)| said == *serde)
    .map_or(said, |(_, python)| python)
    .to_string();
    let error = if said.starts_with("control character") {
        "Invalid control character at".to_string()
    } else {
        python
    };
    Problem {
        kind: "json_invalid",
        loc: vec![Value::String("body".into()), Value::from(position(e, text))],
        msg: "JSON decode error".into(),
        input: Value::Object(Default::default()),
        ctx: Some(serde_json::json!({ "error": error })),
    }
}

/// Python's `JSONDecodeError.pos`: the index, in characters, of where the
/// decoder stopped (the text's end when it ran out).
fn position(e: &serde_json::Error, text: &str) -> usize {
    if e.classify() == serde_json::error::Category::Eof {
        return text.chars().count();
    }
    // serde counts lines from 1 and the column of the offending byte from 1.
    let line_start: usize = text
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum();
    let byte = (line_start + e.column().saturating_sub(1)).min(text.len());
    let mut at = byte;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text[..at].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: &str) -> Result<OldRequest, String> {
        let value =
            decode(Some("application/json"), body.as_bytes()).map_err(|e| format!("{e:?}"))?;
        validate(value, false).map_err(|p| serde_json::to_string(&p).unwrap())
    }

    #[test]
    fn the_old_request_reads_and_more_fields_are_ignored() {
        let r = read(r#"{"url": "https://www.instagram.com/p/ABC123/", "user_id": "u"}"#).unwrap();
        assert_eq!(r.url, "https://www.instagram.com/p/ABC123/");
        assert_eq!(r.user_id.as_deref(), Some("u"));
        let r = read(r#"{"url": "x", "user_id": null, "platform": "instagram"}"#).unwrap();
        assert_eq!(r.user_id, None);
        // No Content-Type is JSON too, as FastAPI reads it.
        let v = decode(None, br#"{"url": "x"}"#).unwrap();
        assert_eq!(validate(v, false).unwrap().url, "x");
        assert!(is_json("application/vnd.api+json; charset=utf-8"));
        assert!(!is_json("text/plain"));
    }

    #[test]
    fn refusals_have_fastapis_shape_and_order() {
        assert_eq!(
            read(r#"{"user_id": "u"}"#).unwrap_err(),
            r#"[{"type":"missing","loc":["body","url"],"msg":"Field required","input":{"user_id":"u"}}]"#
        );
        assert_eq!(
            read(r#"{"url": 5, "user_id": ["u"]}"#).unwrap_err(),
            r#"[{"type":"string_type","loc":["body","url"],"msg":"Input should be a valid string","input":5},{"type":"string_type","loc":["body","user_id"],"msg":"Input should be a valid string","input":["u"]}]"#
        );
        assert_eq!(
            read(r#"["https://x"]"#).unwrap_err(),
            r#"[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":["https://x"]}]"#
        );
        assert_eq!(
            serde_json::to_string(&validate(None, false).unwrap_err()).unwrap(),
            r#"[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]"#
        );
        // Without a token, the user must be named.
        let v = decode(None, br#"{"url": "x"}"#).unwrap();
        assert_eq!(
            validate(v, true).unwrap_err()[0].loc,
            vec![json!("body"), json!("user_id")]
        );
    }

    #[test]
    fn malformed_json_is_located_in_characters_with_pythons_words() {
        let problem = |body: &str| match decode(None, body.as_bytes()) {
            Err(Unreadable::Invalid(p)) => serde_json::to_value(&p[0]).unwrap(),
            other => panic!("{body}: {other:?}"),
        };
        // json.loads('{"url" "x"}'): Expecting ':' delimiter (char 7).
        assert_eq!(
            problem(r#"{"url" "x"}"#),
            json!({"type": "json_invalid", "loc": ["body", 7], "msg": "JSON decode error",
                   "input": {}, "ctx": {"error": "Expecting ':' delimiter"}})
        );
        // Ran out: the end, in characters (é is one).
        assert_eq!(problem(r#"{"url": "é", "#)["loc"], json!(["body", 13]));
        assert_eq!(problem(r#"{"url": x}"#)["loc"], json!(["body", 8]));
        assert_eq!(problem("{\"url\": \"x\"}\n}")["ctx"]["error"], "Extra data");
        assert_eq!(decode(None, b"\xff\xfe"), Err(Unreadable::NotText));
        // Declared as something else: the text, which is no model.
        let v = decode(Some("text/plain"), b"url=x").unwrap();
        assert_eq!(
            validate(v, false).unwrap_err()[0].kind,
            "model_attributes_type"
        );
    }
}
