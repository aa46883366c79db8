//! `hangar clone SRC DST`: a new guest from another's files, with an identity of its
//! own: context id (and so host uid range), hostname, machine id, MACs and addresses
//! on the same networks. On a btrfs pool the files are a writable snapshot (instant
//! whatever their size; the ownership shift then rewrites metadata only); on the dir
//! pool a copy. A running source is frozen for the moment its files are taken. Like a
//! build, the clone is made as `.build-DST` and only the config, written last, makes
//! it a guest.

use crate::build::util::HostFiles;
use crate::net::nic::{AddrReq, NicRequest};
use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock, store};
use hangar_model::config::validate_hostname;
use hangar_model::{GuestConfig, GuestName};

/// What a clone of `nic` asks for: the same network, mode, VLAN, MTU, rates and
/// gateways; new addresses (the next free ones) and a new MAC.
pub(crate) fn request_like(nic: &hangar_model::net::Nic) -> NicRequest {
    NicRequest {
        name: Some(nic.name.clone()),
        network: nic.network.clone(),
        mode: nic.mode,
        ipv4: nic.ipv4.map(|_| AddrReq::Auto),
        ipv6: nic.ipv6.map(|_| AddrReq::Auto),
        mac: None,
        vlan: nic.vlan,
        mtu: nic.mtu,
        egress: nic.egress,
        ingress: nic.ingress,
        gateway: nic.gateway,
        gateway6: nic.gateway6,
    }
}

pub fn clone(
    host: &Host,
    src: &GuestName,
    dst: &GuestName,
    hostname: Option<String>,
) -> Result<GuestConfig> {
    let hostname = hostname.unwrap_or_else(|| dst.to_string());
    validate_hostname(&hostname)?;
    // Both locks, in name order, so two clones between the same guests never deadlock.
    let (first, second) = if src < dst { (src, dst) } else { (dst, src) };
    let _a = lock::guest(&host.paths, first)?;
    let _b = lock::guest(&host.paths, second)?;
    let from = store::load(&host.paths, src)?;
    if store::exists(&host.paths, dst) {
        return Err(CoreError::Exists(dst.to_string()));
    }
    crate::adopt::ensure(host, src)?;
    crate::ops::build::remove_leftovers(host, dst)?;
    let pool = Pool::of(host, &from)?;
    // A new identity, reserved as a build's is.
    let requests: Vec<NicRequest> = from.nics.iter().map(request_like).collect();
    let (context, nics) = crate::ops::build::reserve(host, dst, None, &requests)?;
    let made = (|| -> Result<GuestConfig> {
        // On the dir pool the volume is the reservation dir itself (it exists).
        let volume = pool.build_volume(dst);
        let src_volume = pool.volume(src);
        crate::ops::snapshot::frozen_while(host, src, || pool.copy(&src_volume, &volume, false))?;
        let rootfs = volume.join(&from.rootfs);
        if !from.security.privileged {
            hangar_container::idshift::shift_to(
                &rootfs,
                context.id_base(),
                hangar_model::ctx::ID_RANGE,
            )?;
        }
        personalize(host, dst, &rootfs, &from.hostname, &hostname)?;
        pool.apply_disk_limit(&volume, &host.limits(&from))?;
        let cfg = GuestConfig {
            name: dst.clone(),
            context,
            hostname: hostname.clone(),
            nics: nics.clone(),
            ..from.clone()
        };
        cfg.validate()?;
        crate::ops::build::commit(host, &pool, &volume, &cfg)?;
        Ok(cfg)
    })();
    match made {
        Ok(cfg) => {
            crate::ops::attach::refresh_networks(host, &cfg.nics);
            Ok(cfg)
        }
        Err(e) => {
            crate::ops::build::abandon(host, &pool, dst, context);
            Err(e)
        }
    }
}

/// Give the files of new guest `name` at `rootfs` (a copy of another guest's, in a
/// volume nothing runs in yet) an identity of their own: a new machine id where it
/// has one (systemd, D-Bus and journald key on it), `hostname` in /etc/hostname where
/// it has that file. Neither is written through a symlink: the files came from
/// another guest or an archive, and a link could lead to the host's own.
pub(crate) fn personalize(
    host: &Host,
    name: &GuestName,
    rootfs: &std::path::Path,
    old_hostname: &str,
    hostname: &str,
) -> Result<()> {
    // Its own machine id: systemd, D-Bus and journald key on it.
    let id = crate::build::util::new_machine_id()?;
    let rel = "etc/machine-id";
    let written = crate::build::util::rewrite_in_tree(rootfs, rel, &format!("{id}\n"))?;
    if !written && std::fs::symlink_metadata(rootfs.join(rel)).is_ok() {
        host.notice(format!(
            "{name}: /{rel} is no plain file in a directory (a symlink?): left as it was"
        ));
    }
    HostFiles::read(rootfs)
        .renamed(old_hostname, hostname)
        .write(rootfs)
}
