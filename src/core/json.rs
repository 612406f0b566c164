//! JSON for `exec.registry.load`, read by serde_json, into a small value
//! tree that keeps members in file order and refuses duplicate member names
//! (serde_json would keep the last one silently; a resource file that names
//! a resource twice is a mistake worth reporting). Errors say where.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    /// Members in file order.
    Object(Vec<(String, Json)>),
}

/// Parse a whole document. Errors read "line L, column C: what".
pub fn parse(text: &str) -> Result<Json, String> {
    serde_json::from_str::<Json>(text).map_err(|e| {
        let msg = e.to_string();
        let what = match msg.rfind(" at line ") {
            Some(i) => &msg[..i],
            None => &msg,
        };
        format!("line {}, column {}: {what}", e.line(), e.column())
    })
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        // Seen names, so that the duplicate check stays linear.
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format!("duplicate member \"{k}\"")));
            }
            let v = map.next_value()?;
            members.push((k, v));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resource_files() {
        let v = parse(
            r#"{"h:a": {"kind": "exec.ssh", "port": 2222, "multiplex": false, "ssh_options": {"Compression": "yes"},
            "command_whitelist": ["uptime", "df -h"], "note": null, "esc": "a\"\\\/\u00e9\ud83d\ude00\n"}}"#,
        )
        .unwrap();
        let Json::Object(top) = v else { panic!() };
        let Json::Object(a) = &top[0].1 else { panic!() };
        assert_eq!(a[0], ("kind".into(), Json::String("exec.ssh".into())));
        assert_eq!(a[1].1, Json::Number(2222.0));
        assert_eq!(a[2].1, Json::Bool(false));
        assert_eq!(a[4].1, Json::Array(vec![Json::String("uptime".into()), Json::String("df -h".into())]));
        assert_eq!(a[5].1, Json::Null);
        assert_eq!(a[6].1, Json::String("a\"\\/é😀\n".into()));
    }

    #[test]
    fn errors_say_where() {
        for (text, want) in [
            ("{\"a\": 1,}", "line 1, column 9: trailing comma"),
            ("{\n  \"a\" 1}", "line 2, column 7: expected `:`"),
            ("[1, 2", "EOF while parsing a list"),
            ("{\"a\": 1, \"a\": 2}", "duplicate member \"a\""),
            ("{} x", "trailing characters"),
            ("01", "invalid number"),
            ("\"a\tb\"", "control character"),
            ("", "EOF while parsing a value"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(parse(&"[".repeat(1000)).unwrap_err().contains("recursion limit exceeded"));
    }

    #[test]
    fn duplicate_checks_stay_linear() {
        let members: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}}}", members.join(","));
        let t0 = std::time::Instant::now();
        let Json::Object(m) = parse(&text).unwrap() else { panic!() };
        assert_eq!(m.len(), 200_000);
        assert!(t0.elapsed().as_secs() < 5);
    }
}
