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
use hangar_model::net::{Cidr, Nic, NicAddrs, NicMode, NicOverride};
use hangar_model::{GuestConfig, GuestName};

/// What a copy of guest `source`'s NICs (a clone, an import) asks for: the same
/// network, mode, VLAN, MTU, rates and gateways; a new MAC; the addresses `overrides`
/// give (`--nic NAME:ip=ADDR`), else the next free ones on the same network, and no
/// NIC where they say `none`. A routed NIC's addresses are the source's, given by
/// hand: the copy gets them from `overrides` or goes without that NIC, and is refused
/// (naming the NIC, before anything is made) when they say neither. `copy` names
/// what is made, for messages ("the clone").
pub(crate) fn requests_like(
    source: &str,
    nics: &[Nic],
    overrides: &[NicOverride],
    copy: &str,
) -> Result<Vec<NicRequest>> {
    for (i, o) in overrides.iter().enumerate() {
        if !nics.iter().any(|n| n.name == o.name) {
            let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
            return Err(CoreError::Invalid(format!(
                "--nic {}: {source} has no NIC {} (its NICs: {})",
                o.name,
                o.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        if overrides[..i].iter().any(|p| p.name == o.name) {
            return Err(CoreError::Invalid(format!(
                "--nic {} is given twice: say in one what the copy's {} gets \
                 (--nic {}:ip=ADDR,ip6=ADDR, or --nic {}:none)",
                o.name, o.name, o.name, o.name
            )));
        }
    }
    let mut out = vec![];
    for nic in nics {
        let given = match overrides.iter().find(|o| o.name == nic.name) {
            Some(NicOverride { addrs: None, .. }) => continue,
            Some(NicOverride { addrs: Some(a), .. }) => *a,
            None => NicAddrs::default(),
        };
        if nic.mode == NicMode::Routed {
            for (own, given, key, example) in [
                (nic.ipv4, given.ipv4, "ip", "ADDR/32"),
                (nic.ipv6, given.ipv6, "ip6", "ADDR/128"),
            ] {
                if let (Some(own), None) = (own, given) {
                    let name = &nic.name;
                    return Err(CoreError::Invalid(format!(
                        "NIC {name} of {source} is routed to {own}, an address given by hand \
                         and not picked from a network: give {copy} its own with --nic \
                         {name}:{key}={example} ({own} again if {source} no longer has it), \
                         or leave the NIC out with --nic {name}:none"
                    )));
                }
            }
        }
        let addr = |own: Option<Cidr>, given: Option<Cidr>| match given {
            Some(c) => Some(AddrReq::Fixed(c)),
            None => own.map(|_| AddrReq::Auto),
        };
        out.push(NicRequest {
            name: Some(nic.name.clone()),
            network: nic.network.clone(),
            mode: nic.mode,
            ipv4: addr(nic.ipv4, given.ipv4),
            ipv6: addr(nic.ipv6, given.ipv6),
            mac: None,
            vlan: nic.vlan,
            mtu: nic.mtu,
            egress: nic.egress,
            ingress: nic.ingress,
            gateway: nic.gateway,
            gateway6: nic.gateway6,
        });
    }
    Ok(out)
}

pub fn clone(
    host: &Host,
    src: &GuestName,
    dst: &GuestName,
    hostname: Option<String>,
    nics: &[NicOverride],
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
    let requests = requests_like(src.as_str(), &from.nics, nics, "the clone")?;
    crate::adopt::ensure(host, src)?;
    crate::ops::build::remove_leftovers(host, dst)?;
    let pool = Pool::of(host, &from)?;
    // A new identity, reserved as a build's is.
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
