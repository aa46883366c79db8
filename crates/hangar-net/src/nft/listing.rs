//! Reading hangar's tables back from `nft -j list`: the chains, the verdict map
//! elements and the named sets' elements, with their keys written as `nft` commands take
//! them, so that a removal can name exactly what it deletes.

use crate::{NetError, Result};
use serde_json::Value;

/// Chains, verdict map elements and set elements of one table, as `nft -j list table`
/// shows them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TableState {
    pub(super) chains: Vec<String>,
    pub(super) maps: Vec<String>,
    pub(super) elems: Vec<Elem>,
    /// Named sets (not maps).
    pub(super) sets: Vec<String>,
    pub(super) members: Vec<Member>,
}

/// An element of a named set whose key begins with an interface name (the guards').
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Member {
    pub(super) set: String,
    /// The key as it is written in an `nft` command.
    pub(super) key: String,
    /// The interface name the key begins with.
    pub(super) ifname: String,
    pub(super) comment: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Elem {
    pub(super) map: String,
    /// The key as it is written in an `nft` command.
    pub(super) key: String,
    /// The chain the element jumps to.
    pub(super) target: String,
}

pub(super) fn parse_json(text: &str, args: &[&str]) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| unexpected(args, &e.to_string()))
}

/// Output of `nft args` that hangar cannot understand: reported like a failed command.
pub(super) fn unexpected(args: &[&str], reason: &str) -> NetError {
    NetError::Command {
        command: format!("nft {}", args.join(" ")),
        stderr: format!("unexpected output: {reason}"),
    }
}

/// The objects of kind `kind` (`table`, `chain`, `map`...) in `nft -j` output.
fn objects<'a>(json: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    let list = json["nftables"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter().filter_map(move |o| o.get(kind))
}

pub(super) fn table_state(json: &Value) -> std::result::Result<TableState, String> {
    let mut state = TableState::default();
    for chain in objects(json, "chain") {
        let name = chain["name"].as_str().ok_or("a chain without a name")?;
        state.chains.push(name.to_string());
    }
    for map in objects(json, "map") {
        let name = map["name"].as_str().ok_or("a map without a name")?;
        state.maps.push(name.to_string());
        let quote = map["type"] == "ifname";
        for elem in map["elem"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let (Some(key), Some(target)) = (elem.get(0), elem[1]["jump"]["target"].as_str())
            else {
                continue; // not one of our jumps: never removed, never matched
            };
            let key =
                render(key, quote).ok_or_else(|| format!("map {name}: unexpected key {key}"))?;
            state.elems.push(Elem {
                map: name.to_string(),
                key,
                target: target.to_string(),
            });
        }
    }
    for set in objects(json, "set") {
        let name = set["name"].as_str().ok_or("a set without a name")?;
        state.sets.push(name.to_string());
        // Which parts of a key are interface names, written quoted.
        let quoted: Vec<bool> = match &set["type"] {
            Value::Array(parts) => parts.iter().map(|t| t == "ifname").collect(),
            t => vec![t == "ifname"],
        };
        if quoted.first() != Some(&true) {
            continue; // not keyed by interface: none of hangar's guard sets
        }
        for elem in set["elem"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let (val, comment) = match elem.get("elem") {
                Some(e) => (&e["val"], e["comment"].as_str().map(str::to_string)),
                None => (elem, None),
            };
            let parts: Vec<&Value> = match val.get("concat") {
                Some(Value::Array(c)) => c.iter().collect(),
                _ => vec![val],
            };
            let bad = || format!("set {name}: unexpected element {val}");
            if parts.len() != quoted.len() {
                return Err(bad());
            }
            let rendered: Option<Vec<String>> = parts
                .iter()
                .zip(&quoted)
                .map(|(p, q)| render(p, *q))
                .collect();
            let rendered = rendered.ok_or_else(bad)?;
            let ifname = parts[0].as_str().ok_or_else(bad)?.to_string();
            state.members.push(Member {
                set: name.to_string(),
                key: rendered.join(" . "),
                ifname,
                comment,
            });
        }
    }
    Ok(state)
}

/// A map key from `nft -j` written back as `nft` reads it; `None` for shapes hangar
/// never writes, or text that would not be safe to write into a script.
pub(super) fn render(v: &Value, quote: bool) -> Option<String> {
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/@".contains(&b))
    };
    match v {
        Value::String(s) if plain(s) => Some(if quote { format!("\"{s}\"") } else { s.clone() }),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => {
            if let Some(p) = o.get("prefix") {
                Some(format!(
                    "{}/{}",
                    render(&p["addr"], false)?,
                    p["len"].as_u64()?
                ))
            } else if let Some(Value::Array(r)) = o.get("range") {
                Some(format!(
                    "{}-{}",
                    render(r.first()?, quote)?,
                    render(r.get(1)?, quote)?
                ))
            } else if let Some(Value::Array(c)) = o.get("concat") {
                let parts: Option<Vec<String>> = c.iter().map(|p| render(p, quote)).collect();
                Some(parts?.join(" . "))
            } else if let Some(e) = o.get("elem") {
                render(&e["val"], quote)
            } else {
                None
            }
        }
        _ => None,
    }
}
