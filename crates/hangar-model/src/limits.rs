//! Resource limits of a guest: the `[limits]` table of its config, the host defaults,
//! and `hangar set NAME key=value`.
//!
//! Keys follow the kernel's names where it has one (`memory.max`, `cpu.weight`,
//! `pids.max`, `io.read_bps`) and VServer's where people know those (`cpu.fill_rate` /
//! `cpu.interval`, the token bucket, become `cpu.max`). An unset key takes the host
//! default; `max` means explicitly unlimited.

use crate::{ModelError, Size};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// A limit value or explicit "no limit" (`max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound<T> {
    Unlimited,
    At(T),
}

impl<T: Copy> Bound<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Bound::Unlimited => None,
            Bound::At(v) => Some(v),
        }
    }
}

fn is_unlimited(s: &str) -> bool {
    matches!(s.trim(), "max" | "unlimited" | "none")
}

impl<T: Serialize> Serialize for Bound<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Bound::Unlimited => s.serialize_str("max"),
            Bound::At(v) => v.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Bound<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            F(f64),
            S(String),
        }
        // Read the raw value first so that the inner type's own error message (which
        // names the bad value) reaches the user, not serde's "no variant matched".
        let value = match Raw::deserialize(d)? {
            Raw::S(s) if is_unlimited(&s) => return Ok(Bound::Unlimited),
            Raw::S(s) => T::deserialize(s.into_deserializer()),
            Raw::N(n) => T::deserialize(n.into_deserializer()),
            Raw::F(f) => T::deserialize(f.into_deserializer()),
        };
        value
            .map(Bound::At)
            .map_err(|e: serde::de::value::Error| serde::de::Error::custom(e))
    }
}

impl<T: fmt::Display> fmt::Display for Bound<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Unlimited => f.write_str("max"),
            Bound::At(v) => v.fmt(f),
        }
    }
}

/// CPU time as thousandths of one CPU: `25%` is 250, `1.5` (CPUs) is 1500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuShare(pub u32);

impl CpuShare {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let err = || ModelError::Field {
            field: "cpu.max",
            why: format!("{s:?}: write a share of one CPU like 25% or a number of CPUs like 1.5"),
        };
        let t = s.trim();
        let thousandths = match t.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map_err(|_| err())? * 10.0,
            None => t.parse::<f64>().map_err(|_| err())? * 1000.0,
        };
        if !thousandths.is_finite() || !(10.0..=1_024_000.0).contains(&thousandths) {
            return Err(ModelError::Field {
                field: "cpu.max",
                why: format!("{s:?}: must be between 1% and 1024 CPUs"),
            });
        }
        Ok(CpuShare(thousandths.round() as u32))
    }

    /// Quota per period, in microseconds, for a period of `period_us`.
    pub fn quota_us(self, period_us: u64) -> u64 {
        u64::from(self.0) * period_us / 1000
    }
}

impl fmt::Display for CpuShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 <= 1000 && self.0 % 10 == 0 {
            write!(f, "{}%", self.0 / 10)
        } else {
            let s = format!("{:.3}", f64::from(self.0) / 1000.0);
            f.write_str(s.trim_end_matches('0').trim_end_matches('.'))
        }
    }
}

/// A duration as people write it (`50ms`, `1s`, `200us`), kept in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Micros(pub u64);

impl Micros {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, ModelError> {
        let err = || ModelError::Field {
            field,
            why: format!("{s:?}: write a duration like 50ms, 1s or 200us"),
        };
        let t = s.trim();
        let (num, mult) = if let Some(n) = t.strip_suffix("us") {
            (n, 1.0)
        } else if let Some(n) = t.strip_suffix("ms") {
            (n, 1e3)
        } else if let Some(n) = t.strip_suffix('s') {
            (n, 1e6)
        } else {
            return Err(err());
        };
        let v = num.trim().parse::<f64>().map_err(|_| err())? * mult;
        if !v.is_finite() || !(0.0..=3.6e9).contains(&v) {
            return Err(err());
        }
        Ok(Micros(v.round() as u64))
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v % 1_000_000 == 0 && v > 0 => write!(f, "{}s", v / 1_000_000),
            v if v % 1000 == 0 && v > 0 => write!(f, "{}ms", v / 1000),
            v => write!(f, "{v}us"),
        }
    }
}

macro_rules! string_serde {
    ($t:ty, $parse:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    S(String),
                    F(f64),
                }
                let s = match Raw::deserialize(d)? {
                    Raw::S(s) => s,
                    Raw::F(f) => f.to_string(),
                };
                $parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(CpuShare, CpuShare::parse);
string_serde!(Micros, |s: &str| Micros::parse("cpu.burst", s));
string_serde!(CpuList, CpuList::parse);

/// A list of CPUs, `0-1,3` (cpuset syntax), kept as written after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(String);

impl CpuList {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let err = || ModelError::Field {
            field: "cpu.pin",
            why: format!("{s:?}: write CPUs like 0-1 or 0,2,4-5"),
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(err());
        }
        for part in t.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (
                a.parse::<u32>().map_err(|_| err())?,
                b.parse::<u32>().map_err(|_| err())?,
            );
            if a > b || b > 4095 {
                return Err(err());
            }
        }
        Ok(CpuList(t.to_string()))
    }

    pub fn cpus(&self) -> Vec<u32> {
        let mut out = vec![];
        for part in self.0.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                out.extend(a..=b);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Soft and hard value of one rlimit; `N` sets both, `SOFT:HARD` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub soft: Bound<u64>,
    pub hard: Bound<u64>,
}

/// The rlimits a guest's config may set (resource names of setrlimit(2)).
pub const RLIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rtprio",
    "sigpending",
    "stack",
];

impl Rlimit {
    pub fn parse(name: &str, s: &str) -> Result<Self, ModelError> {
        let one = |v: &str| -> Result<Bound<u64>, ModelError> {
            if is_unlimited(v) {
                return Ok(Bound::Unlimited);
            }
            // Sizes are understood for all (`as = "24M"`); a plain number is itself.
            Size::parse(v)
                .map(|n| Bound::At(n.0))
                .map_err(|_| ModelError::Field {
                    field: "rlimits",
                    why: format!("{name} = {s:?}: write a number, SOFT:HARD, or max"),
                })
        };
        let (soft, hard) = match s.split_once(':') {
            Some((a, b)) => (one(a)?, one(b)?),
            None => (one(s)?, one(s)?),
        };
        if let (Bound::At(a), Bound::At(b)) = (soft, hard)
            && a > b
        {
            return Err(ModelError::Field {
                field: "rlimits",
                why: format!("{name}: soft {a} is above hard {b}"),
            });
        }
        if soft == Bound::Unlimited && hard != Bound::Unlimited {
            return Err(ModelError::Field {
                field: "rlimits",
                why: format!("{name}: soft max is above hard {hard}"),
            });
        }
        Ok(Rlimit { soft, hard })
    }
}

impl fmt::Display for Rlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.soft == self.hard {
            write!(f, "{}", self.soft)
        } else {
            write!(f, "{}:{}", self.soft, self.hard)
        }
    }
}

impl Serialize for Rlimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Rlimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        Rlimit::parse("rlimit", &s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLimits {
    /// Hard limit of resident memory (VServer's rss.hard): the guest's own processes are
    /// OOM-killed beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Bound<Size>>,
    /// Soft limit: above it the kernel reclaims the guest's memory first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Bound<Size>>,
    /// Swap the guest may use on top of `max` (VServer's `as` minus `rss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Bound<Size>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuLimits {
    /// CPU time per period (VServer's token bucket fill rate / interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Bound<CpuShare>>,
    /// Unused time the guest may save up and spend in a burst (the bucket's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<Micros>,
    /// Share of contended CPU time, 1-10000 (100 is the default weight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// CPUs the guest may run on (Xen's vcpu-pin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<CpuList>,
}

/// The guest's disk, where its pool's driver can limit it (btrfs: a qgroup on its
/// subvolume; the `dir` driver has no limit and refuses one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskLimits {
    /// Bytes the guest's files may take (`disk.size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Bound<Size>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PidsLimits {
    /// Processes and threads: a fork bomb stops here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Bound<u64>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoLimits {
    /// Share of contended disk time, 1-10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Per device (a path like /dev/vda, or MAJOR:MINOR): bytes per second.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub read_bps: BTreeMap<String, Size>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub write_bps: BTreeMap<String, Size>,
    /// Per device: operations per second.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub read_iops: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub write_iops: BTreeMap<String, u64>,
}

/// The `[limits]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "is_default")]
    pub memory: MemoryLimits,
    #[serde(default, skip_serializing_if = "is_default")]
    pub cpu: CpuLimits,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pids: PidsLimits,
    #[serde(default, skip_serializing_if = "is_default")]
    pub io: IoLimits,
    #[serde(default, skip_serializing_if = "is_default")]
    pub disk: DiskLimits,
    /// Per-process limits of setrlimit(2) (`nofile = 4096`, `core = "0:max"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rlimits: BTreeMap<String, Rlimit>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Every key `hangar set` understands, for its help and its errors.
pub const KEYS: &[&str] = &[
    "memory.max",
    "memory.high",
    "memory.swap",
    "cpu.max",
    "cpu.fill_rate",
    "cpu.interval",
    "cpu.burst",
    "cpu.weight",
    "cpu.pin",
    "pids.max",
    "io.weight",
    "io.read_bps",
    "io.write_bps",
    "io.read_iops",
    "io.write_iops",
    "disk.size",
    "rlimit.NAME",
];

fn bound<T>(
    v: &str,
    parse: impl Fn(&str) -> Result<T, ModelError>,
) -> Result<Option<Bound<T>>, ModelError> {
    if v.trim().is_empty() {
        Ok(None)
    } else if is_unlimited(v) {
        Ok(Some(Bound::Unlimited))
    } else {
        parse(v).map(|x| Some(Bound::At(x)))
    }
}

fn weight(field: &'static str, v: &str) -> Result<Option<u32>, ModelError> {
    if v.trim().is_empty() {
        return Ok(None);
    }
    match v.trim().parse::<u32>() {
        Ok(w) if (1..=10000).contains(&w) => Ok(Some(w)),
        _ => Err(ModelError::Field {
            field,
            why: format!("{v:?}: use a weight from 1 to 10000 (100 is the default)"),
        }),
    }
}

fn count(field: &'static str, v: &str) -> Result<u64, ModelError> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ModelError::Field {
            field,
            why: format!("{v:?}: use a positive number"),
        })
}

/// `DEVICE:VALUE` (the device may itself contain a colon, as in 8:0:10M).
fn device_value<'a>(field: &'static str, v: &'a str) -> Result<(&'a str, &'a str), ModelError> {
    let (dev, val) = v.rsplit_once(':').ok_or_else(|| ModelError::Field {
        field,
        why: format!("{v:?}: write DEVICE:VALUE, e.g. /dev/vda:10M or 254:0:10M"),
    })?;
    if dev.is_empty() || !(dev.starts_with('/') || dev.split(':').all(|p| p.parse::<u32>().is_ok()))
    {
        return Err(ModelError::Field {
            field,
            why: format!("{dev:?}: name the device by path (/dev/vda) or number (254:0)"),
        });
    }
    Ok((dev, val))
}

impl Limits {
    /// These limits with unset keys filled from `defaults`.
    pub fn or(&self, defaults: &Limits) -> Limits {
        let d = defaults;
        let mut rlimits = d.rlimits.clone();
        rlimits.extend(self.rlimits.clone());
        let map_or = |a: &BTreeMap<String, Size>, b: &BTreeMap<String, Size>| {
            if a.is_empty() { b.clone() } else { a.clone() }
        };
        let map_or_n = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            if a.is_empty() { b.clone() } else { a.clone() }
        };
        Limits {
            memory: MemoryLimits {
                max: self.memory.max.or(d.memory.max),
                high: self.memory.high.or(d.memory.high),
                swap: self.memory.swap.or(d.memory.swap),
            },
            cpu: CpuLimits {
                max: self.cpu.max.or(d.cpu.max),
                burst: self.cpu.burst.or(d.cpu.burst),
                weight: self.cpu.weight.or(d.cpu.weight),
                pin: self.cpu.pin.clone().or(d.cpu.pin.clone()),
            },
            pids: PidsLimits {
                max: self.pids.max.or(d.pids.max),
            },
            disk: DiskLimits {
                size: self.disk.size.or(d.disk.size),
            },
            io: IoLimits {
                weight: self.io.weight.or(d.io.weight),
                read_bps: map_or(&self.io.read_bps, &d.io.read_bps),
                write_bps: map_or(&self.io.write_bps, &d.io.write_bps),
                read_iops: map_or_n(&self.io.read_iops, &d.io.read_iops),
                write_iops: map_or_n(&self.io.write_iops, &d.io.write_iops),
            },
            rlimits,
        }
    }

    /// Apply one `key=value` of `hangar set`. An empty value unsets the key (back to
    /// the host default); `max` means unlimited.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ModelError> {
        let v = value.trim();
        match key {
            "memory.max" => self.memory.max = bound(v, Size::parse)?,
            "memory.high" => self.memory.high = bound(v, Size::parse)?,
            "memory.swap" => {
                self.memory.swap = bound(v, |s| {
                    if s == "0" {
                        Ok(Size(0))
                    } else {
                        Size::parse(s)
                    }
                })?
            }
            "cpu.max" => self.cpu.max = bound(v, CpuShare::parse)?,
            "cpu.burst" => {
                self.cpu.burst = if v.is_empty() {
                    None
                } else {
                    Some(Micros::parse("cpu.burst", v)?)
                }
            }
            "cpu.weight" => self.cpu.weight = weight("cpu.weight", v)?,
            "cpu.pin" => {
                self.cpu.pin = if v.is_empty() {
                    None
                } else {
                    Some(CpuList::parse(v)?)
                }
            }
            "pids.max" => self.pids.max = bound(v, |s| count("pids.max", s))?,
            "disk.size" => self.disk.size = bound(v, Size::parse)?,
            "io.weight" => self.io.weight = weight("io.weight", v)?,
            "io.read_bps" | "io.write_bps" => {
                let field = if key == "io.read_bps" {
                    "io.read_bps"
                } else {
                    "io.write_bps"
                };
                let (dev, val) = device_value(field, v)?;
                let map = if key == "io.read_bps" {
                    &mut self.io.read_bps
                } else {
                    &mut self.io.write_bps
                };
                if is_unlimited(val) || val.is_empty() {
                    map.remove(dev);
                } else {
                    map.insert(dev.to_string(), Size::parse(val)?);
                }
            }
            "io.read_iops" | "io.write_iops" => {
                let field = if key == "io.read_iops" {
                    "io.read_iops"
                } else {
                    "io.write_iops"
                };
                let (dev, val) = device_value(field, v)?;
                let map = if key == "io.read_iops" {
                    &mut self.io.read_iops
                } else {
                    &mut self.io.write_iops
                };
                if is_unlimited(val) || val.is_empty() {
                    map.remove(dev);
                } else {
                    map.insert(dev.to_string(), count(field, val)?);
                }
            }
            _ => return self.set_rlimit(key, v),
        }
        Ok(())
    }

    fn set_rlimit(&mut self, key: &str, v: &str) -> Result<(), ModelError> {
        let name = key.strip_prefix("rlimit.").unwrap_or(key);
        if !RLIMITS.contains(&name) {
            return Err(ModelError::Field {
                field: "key",
                why: format!("{key:?} is not a limit; known keys: {}", KEYS.join(", ")),
            });
        }
        if v.is_empty() {
            self.rlimits.remove(name);
        } else {
            self.rlimits
                .insert(name.to_string(), Rlimit::parse(name, v)?);
        }
        Ok(())
    }

    /// Apply a whole `hangar set` command line: `key=value` items, where VServer's
    /// `cpu.fill_rate=F cpu.interval=I` pair becomes `cpu.max = F/I`.
    pub fn set_all(&mut self, items: &[String]) -> Result<(), ModelError> {
        let mut fill = None;
        let mut interval = None;
        for item in items {
            let (k, v) = item.split_once('=').ok_or_else(|| ModelError::Field {
                field: "key",
                why: format!("{item:?}: write KEY=VALUE"),
            })?;
            match k.trim() {
                "cpu.fill_rate" => fill = Some(count("cpu.fill_rate", v)?),
                "cpu.interval" => interval = Some(count("cpu.interval", v)?),
                key => self.set(key, v)?,
            }
        }
        match (fill, interval) {
            (None, None) => {}
            (Some(f), Some(i)) => {
                let share = CpuShare::parse(&format!("{}", f as f64 / i as f64))?;
                self.cpu.max = Some(Bound::At(share));
            }
            _ => {
                return Err(ModelError::Field {
                    field: "cpu.fill_rate",
                    why: "give cpu.fill_rate and cpu.interval together".into(),
                });
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        for name in self.rlimits.keys() {
            if !RLIMITS.contains(&name.as_str()) {
                return Err(ModelError::Field {
                    field: "limits.rlimits",
                    why: format!("{name:?} is not an rlimit; known: {}", RLIMITS.join(", ")),
                });
            }
        }
        if let Some(Bound::At(m)) = self.memory.max
            && m.0 < (4 << 20)
        {
            return Err(ModelError::Field {
                field: "limits.memory.max",
                why: "must be at least 4M".into(),
            });
        }
        for (field, w) in [
            ("limits.cpu.weight", self.cpu.weight),
            ("limits.io.weight", self.io.weight),
        ] {
            if matches!(w, Some(w) if !(1..=10000).contains(&w)) {
                return Err(ModelError::Field {
                    field,
                    why: "use a weight from 1 to 10000".into(),
                });
            }
        }
        if self.pids.max == Some(Bound::At(0)) {
            return Err(ModelError::Field {
                field: "limits.pids.max",
                why: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Result<Limits, ModelError> {
        let mut l = Limits::default();
        l.set_all(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        Ok(l)
    }

    #[test]
    fn keys_people_write_are_understood() {
        let l = set(&[
            "memory.max=20M",
            "cpu.max=25%",
            "cpu.weight=200",
            "cpu.pin=0-1",
            "pids.max=64",
            "nofile=1024:4096",
            "io.write_bps=/dev/vda:10M",
        ])
        .unwrap();
        assert_eq!(l.memory.max, Some(Bound::At(Size(20 << 20))));
        assert_eq!(l.cpu.max, Some(Bound::At(CpuShare(250))));
        assert_eq!(l.cpu.pin.as_ref().unwrap().cpus(), [0, 1]);
        assert_eq!(
            l.rlimits["nofile"],
            Rlimit {
                soft: Bound::At(1024),
                hard: Bound::At(4096)
            }
        );
        assert_eq!(l.io.write_bps["/dev/vda"], Size(10 << 20));
    }

    #[test]
    fn the_token_bucket_becomes_a_share() {
        let l = set(&["cpu.fill_rate=1", "cpu.interval=4"]).unwrap();
        assert_eq!(l.cpu.max, Some(Bound::At(CpuShare(250))));
        assert!(set(&["cpu.fill_rate=1"]).is_err());
    }

    #[test]
    fn cpu_shares_parse_and_print() {
        assert_eq!(CpuShare::parse("1.5").unwrap(), CpuShare(1500));
        assert_eq!(CpuShare(1500).to_string(), "1.5");
        assert_eq!(CpuShare(250).to_string(), "25%");
        assert_eq!(CpuShare(250).quota_us(100_000), 25_000);
        assert!(CpuShare::parse("0%").is_err());
        assert!(CpuShare::parse("lots").is_err());
    }

    #[test]
    fn max_unsets_and_empty_restores_the_default() {
        let mut l = set(&["memory.max=max", "pids.max=10"]).unwrap();
        assert_eq!(l.memory.max, Some(Bound::Unlimited));
        l.set("pids.max", "").unwrap();
        let d = Limits {
            pids: PidsLimits {
                max: Some(Bound::At(1024)),
            },
            ..Default::default()
        };
        assert_eq!(l.or(&d).pids.max, Some(Bound::At(1024)));
        assert_eq!(l.or(&d).memory.max, Some(Bound::Unlimited));
    }

    #[test]
    fn bad_keys_and_values_are_refused_by_name() {
        for (item, needle) in [
            ("memroy.max=1G", "memroy.max"),
            ("cpu.max=300000%", "cpu.max"),
            ("cpu.weight=0", "cpu.weight"),
            ("cpu.pin=1-0", "cpu.pin"),
            ("pids.max=-3", "pids.max"),
            ("io.read_bps=10M", "io.read_bps"),
            ("nofile=10:5", "nofile"),
            ("memory.max", "KEY=VALUE"),
        ] {
            let e = set(&[item]).unwrap_err().to_string();
            assert!(e.contains(needle), "{item}: {e}");
        }
    }

    #[test]
    fn limits_round_trip_through_toml() {
        let l = set(&[
            "memory.max=512M",
            "memory.swap=0",
            "cpu.max=1.5",
            "cpu.burst=50ms",
            "rlimit.core=0:max",
            "io.read_iops=8:0:100",
        ])
        .unwrap();
        let text = toml::to_string(&l).unwrap();
        let back: Limits = toml::from_str(&text).unwrap();
        assert_eq!(back, l, "{text}");
    }
}
