//! `Host`: the entry point of the library. Front ends open one and call its operations.

use crate::paths::Paths;
use crate::{CoreError, Result, store};
use hangar_model::limits::Bound;
use hangar_model::{GuestConfig, HostDefaults, Size};
use std::path::PathBuf;

pub struct Host {
    pub paths: Paths,
    pub defaults: HostDefaults,
    /// Things an operation did besides what was asked, which the user must hear of
    /// (a guest adopted by a new monitor, what could not be carried over): front ends
    /// show them after the operation, also when it failed.
    notices: std::sync::Mutex<Vec<String>>,
}

impl Host {
    /// Open the host rooted at `root` (or `HANGAR_ROOT`, or `/`). A rename that a crash
    /// interrupted is finished or rolled back first (a guest's files must not stay
    /// split between two names for the next operation to trip on): said in a notice.
    pub fn open(root: Option<PathBuf>) -> Result<Host> {
        let paths = Paths::from_env(root);
        let defaults = store::load_defaults(&paths)?;
        let host = Host {
            paths,
            defaults,
            notices: Default::default(),
        };
        let (done, failed) = crate::ops::rename::recover(&host);
        for n in done.into_iter().chain(failed) {
            host.notice(n);
        }
        Ok(host)
    }

    /// Record a notice for the front end (see [`Host::take_notices`]).
    pub fn notice(&self, text: impl Into<String>) {
        if let Ok(mut n) = self.notices.lock() {
            n.push(text.into());
        }
    }

    /// The notices recorded since the last call, oldest first.
    pub fn take_notices(&self) -> Vec<String> {
        self.notices
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// Guest `cfg`'s root filesystem on the host: in its pool's volume (mounted if it
    /// was not: its pool, or in an image pool the volume itself), or where an absolute
    /// `rootfs` in its config says.
    pub fn rootfs(&self, cfg: &GuestConfig) -> Result<PathBuf> {
        if cfg.rootfs.is_absolute() {
            return Ok(cfg.rootfs.clone());
        }
        let pool = crate::pools::Pool::of(self, cfg)?;
        let volume = pool.volume(&cfg.name);
        pool.mount(&volume)?;
        Ok(volume.join(&cfg.rootfs))
    }

    /// The cgroup every guest's cgroup lives under.
    pub fn cgroup_parent(&self) -> String {
        self.defaults
            .cgroup_parent
            .clone()
            .unwrap_or_else(|| self.paths.default_cgroup_parent())
    }

    pub fn cgroups(&self) -> Result<hangar_cgroup::Cgroups> {
        Ok(hangar_cgroup::Cgroups::probe()?)
    }

    /// The guest's cgroup handle (whether or not it exists now).
    pub fn guest_cgroup(&self, cfg: &GuestConfig) -> Result<hangar_cgroup::GuestCgroup> {
        Ok(self
            .cgroups()?
            .guest(&self.cgroup_parent(), &cfg.context.to_string()))
    }

    /// Whether this kernel takes `cfg`'s limits, asked of the kernel itself for a guest
    /// that is not running: its cgroup is made with them and removed at once, so `set`
    /// and `config edit` refuse what `start` would refuse (an I/O weight without BFQ, a
    /// swap limit without swap accounting), with the same message. A guest cgroup that
    /// exists already is left alone: its limits are checked when they are applied.
    pub fn trial_limits(&self, cfg: &GuestConfig) -> Result<()> {
        let limits = self.cgroup_limits(cfg)?;
        let cgroups = self.cgroups()?;
        let parent = self.cgroup_parent();
        let name = cfg.context.to_string();
        if cgroups.guest(&parent, &name).exists() {
            return Ok(());
        }
        let parent_existed = cgroups.parent_dirs(&parent).iter().all(|d| d.is_dir());
        let made = cgroups.create(&parent, &name, &limits);
        if let Ok(guest) = &made {
            guest.remove()?;
        }
        if !parent_existed {
            // Best effort: another root's start may be creating a guest in it right now.
            let _ = cgroups.remove_parent(&parent);
        }
        made?;
        Ok(())
    }

    /// Effective limits: the guest's own, or the host defaults.
    pub fn limits(&self, cfg: &GuestConfig) -> hangar_model::Limits {
        cfg.limits.or(&self.defaults.limits)
    }

    /// The effective rlimits: (name, soft, hard), None = unlimited.
    pub fn rlimits(&self, cfg: &GuestConfig) -> Vec<(String, Option<u64>, Option<u64>)> {
        self.limits(cfg)
            .rlimits
            .into_iter()
            .map(|(n, r)| (n, r.soft.value(), r.hard.value()))
            .collect()
    }

    /// The effective limits in the cgroup layer's terms. Devices named by path are
    /// resolved to their numbers here.
    pub fn cgroup_limits(&self, cfg: &GuestConfig) -> Result<hangar_cgroup::Limits> {
        let l = self.limits(cfg);
        let size = |b: Option<Bound<Size>>| b.and_then(Bound::value).map(|s| s.0);
        Ok(hangar_cgroup::Limits {
            memory_max: size(l.memory.max),
            memory_high: size(l.memory.high),
            memory_swap_max: size(l.memory.swap),
            pids_max: l.pids.max.and_then(Bound::value),
            cpu_max: l
                .cpu
                .max
                .and_then(Bound::value)
                .map(|share| hangar_cgroup::CpuMax {
                    quota_us: share.quota_us(CPU_PERIOD_US),
                    period_us: CPU_PERIOD_US,
                }),
            cpu_burst_us: l.cpu.burst.map(|b| b.0),
            cpu_weight: l.cpu.weight,
            cpuset_cpus: l.cpu.pin.map(|p| p.as_str().to_string()),
            io_weight: l.io.weight,
            io_max: io_max(&l.io)?,
        })
    }
}

/// The period of the CPU bandwidth limit (the kernel's default): 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Per-device I/O limits, grouped by device number.
fn io_max(io: &hangar_model::limits::IoLimits) -> Result<Vec<hangar_cgroup::IoMax>> {
    type Map = std::collections::BTreeMap<(u32, u32), hangar_cgroup::IoMax>;
    fn entry<'a>(by_dev: &'a mut Map, dev: &str) -> Result<&'a mut hangar_cgroup::IoMax> {
        let (major, minor) = device_number(dev)?;
        Ok(by_dev
            .entry((major, minor))
            .or_insert(hangar_cgroup::IoMax {
                major,
                minor,
                ..Default::default()
            }))
    }
    let mut by_dev = Map::new();
    for (dev, v) in &io.read_bps {
        entry(&mut by_dev, dev)?.read_bps = Some(v.0);
    }
    for (dev, v) in &io.write_bps {
        entry(&mut by_dev, dev)?.write_bps = Some(v.0);
    }
    for (dev, v) in &io.read_iops {
        entry(&mut by_dev, dev)?.read_iops = Some(*v);
    }
    for (dev, v) in &io.write_iops {
        entry(&mut by_dev, dev)?.write_iops = Some(*v);
    }
    Ok(by_dev.into_values().collect())
}

/// `254:0` as written, or the device number of a block device path like `/dev/vda`.
fn device_number(dev: &str) -> Result<(u32, u32)> {
    if let Some((a, b)) = dev.split_once(':')
        && let (Ok(a), Ok(b)) = (a.parse(), b.parse())
    {
        return Ok((a, b));
    }
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m =
        std::fs::metadata(dev).map_err(|e| CoreError::io("looking up the block device", dev, e))?;
    if !m.file_type().is_block_device() {
        return Err(CoreError::Invalid(format!(
            "{dev} is not a block device; I/O limits name a disk like /dev/vda or 254:0"
        )));
    }
    let rdev = m.rdev();
    Ok((
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
    ))
}
