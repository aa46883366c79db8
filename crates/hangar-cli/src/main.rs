//! The `hangar` command: parse arguments, call `hangar-core`, print the result.
#![forbid(unsafe_code)]

mod args;
mod table;

use anyhow::{Context, Result, bail};
use args::{Attachable, Cli, Cmd, ConfigCmd, Format, MethodArgs, MethodName, TrailingMethodArgs};
use clap::Parser;
use hangar_core::build::Method;
use hangar_core::net::nic::NicRequest;
use hangar_core::ops;
use hangar_core::{CoreError, Host};
use hangar_model::image::ImageName;
use hangar_model::{ContextId, GuestName};
use std::io::IsTerminal;

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let mut msg = format!("hangar: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!(": {cause}"));
            }
            eprintln!("{msg}");
            std::process::exit(1);
        }
    }
}

fn name(s: &str) -> Result<GuestName> {
    Ok(GuestName::new(s)?)
}

fn run(cli: Cli) -> Result<i32> {
    let host = Host::open(cli.root)?;
    let result = dispatch(&host, cli.command);
    // What the command did besides what was asked (a guest adopted by a new monitor)
    // is always said, also when the command failed.
    for n in host.take_notices() {
        eprintln!("hangar: note: {n}");
    }
    result
}

fn dispatch(host: &Host, command: Cmd) -> Result<i32> {
    match command {
        Cmd::Build(b) => build(host, *b)?,
        Cmd::Start(a) => {
            let guest = name(&a.name)?;
            if hangar_core::store::load(&host.paths, &guest).is_ok_and(|c| c.security.privileged) {
                eprintln!(
                    "hangar: warning: {guest} is privileged: its root is the host's root (logged)"
                );
            }
            let pid = ops::start::start(host, &guest)?;
            quiet_note(&format!("started {} (init pid {pid})", a.name));
        }
        Cmd::Stop(a) => ops::stop::stop(host, &name(&a.name)?, a.timeout)?,
        Cmd::Restart(a) => {
            ops::stop::restart(host, &name(&a.name)?, a.timeout)?;
        }
        Cmd::Kill(a) => ops::stop::kill(host, &name(&a.name)?)?,
        Cmd::Delete(a) => {
            for r in ops::delete::delete(host, &name(&a.name)?, a.force)? {
                eprintln!("hangar: removed {r} with {}", a.name);
            }
        }
        Cmd::Exec(a) => {
            let tty = a.tty
                || (!a.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal());
            return Ok(ops::exec::exec(
                host,
                &name(&a.name)?,
                a.command,
                a.env,
                tty,
            )?);
        }
        Cmd::Enter(a) => {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "enter needs a terminal; use `hangar exec {} -- COMMAND` from scripts",
                    a.name
                );
            }
            let shell = vec![
                "/bin/sh".to_string(),
                "-c".into(),
                "exec $( [ -x /bin/bash ] && echo /bin/bash || echo /bin/sh ) -l".into(),
            ];
            return Ok(ops::exec::exec(host, &name(&a.name)?, shell, vec![], true)?);
        }
        Cmd::List(a) => {
            let rows = ops::list::list(host)?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Table => print!("{}", table::render(&rows)),
            }
        }
        Cmd::Set(a) => {
            let out = ops::set::set(host, &name(&a.name)?, &a.items)?;
            if !out.live {
                quiet_note(&format!(
                    "saved; {} is not running, the limits apply when it starts",
                    a.name
                ));
            }
        }
        Cmd::Limits(a) => {
            let report = ops::limits::limits(host, &name(&a.name)?)?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Table => print!("{}", table::limits(&report)),
            }
        }
        Cmd::Network(c) => network(host, c)?,
        Cmd::Attach(a) if matches!(a.what, Attachable::Dir) => {
            let dir = ops::shared_dir::attach(host, &name(&a.name)?, &a.items)?;
            let ro = if dir.readonly { ", read-only" } else { "" };
            quiet_note(&format!(
                "shared {} with {} at {}{ro}",
                dir.host, a.name, dir.path
            ));
        }
        Cmd::Attach(a) => {
            let nic = ops::attach::attach(host, &name(&a.name)?, &a.items)?;
            let addrs: Vec<String> = nic
                .ipv4
                .iter()
                .chain(&nic.ipv6)
                .map(|c| c.to_string())
                .collect();
            quiet_note(&format!(
                "attached {} ({}) to {}",
                nic.name,
                addrs.join(" "),
                a.name
            ));
        }
        Cmd::Detach(a) => match a.what {
            Attachable::Nic => ops::attach::detach(host, &name(&a.name)?, &a.target)?,
            Attachable::Dir => ops::shared_dir::detach(host, &name(&a.name)?, &a.target)?,
        },
        Cmd::Logs(a) => logs(host, &name(&a.name)?, a.follow)?,
        Cmd::Pool(c) => pool(host, c)?,
        Cmd::Snapshot(c) => snapshot(host, c)?,
        Cmd::Clone(a) => {
            let cfg = ops::clone::clone(
                host,
                &name(&a.source)?,
                &name(&a.name)?,
                a.hostname,
                &nic_overrides(&a.nics)?,
            )?;
            quiet_note(&format!(
                "cloned {} into {} (context {})",
                a.source, a.name, cfg.context
            ));
        }
        Cmd::Rename(a) => {
            let cfg = ops::rename::rename(host, &name(&a.old)?, &name(&a.new)?)?;
            quiet_note(&format!(
                "renamed {} to {} (hostname {})",
                a.old, a.new, cfg.hostname
            ));
        }
        Cmd::Export(a) => export(host, a)?,
        Cmd::Import(a) => import(host, a)?,
        Cmd::Image(c) => image(host, c)?,
        Cmd::Publish(a) => {
            let image = ImageName::new(&a.image)?;
            let info = ops::image::publish(host, &name(&a.name)?, &image)?;
            quiet_note(&format!(
                "published {} as image {} ({}); build a guest of it with `hangar build NAME \
                 --image {}`",
                a.name,
                info.name,
                indicatif::HumanBytes(info.size),
                info.name
            ));
        }
        Cmd::Pause(a) => ops::snapshot::pause(host, &name(&a.name)?, true)?,
        Cmd::Unpause(a) => ops::snapshot::pause(host, &name(&a.name)?, false)?,
        Cmd::Unify(a) => {
            let names = a
                .names
                .iter()
                .map(|n| name(n))
                .collect::<Result<Vec<_>>>()?;
            let pools = ops::unify::unify(host, &names, a.all)?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&pools)?),
                Format::Table => print!("{}", table::unified(&pools)),
            }
        }
        Cmd::Df(a) => {
            let rows = ops::pool::df(host)?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Table => print!("{}", table::df(&rows)),
            }
        }
        Cmd::Repair(a) => {
            let r = ops::repair::repair(host)?;
            if a.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("guests adopted by a new monitor: {}", or_none(&r.adopted));
                println!(
                    "guests cleaned up after (ended unwatched): {}",
                    or_none(&r.cleaned)
                );
                println!(
                    "empty cgroups of stopped guests removed: {}",
                    or_none(&r.empty_cgroups)
                );
                println!(
                    "interrupted renames finished or undone: {}",
                    or_none(&r.renames)
                );
                println!(
                    "volumes of no guest unmounted (a killed build's; the next build or \
                     delete of the name removes them): {}",
                    or_none(&r.unmounted)
                );
                println!("guests that could not be repaired: {}", or_none(&r.failed));
                print_network_check(&r.network);
            }
            if !r.failed.is_empty() {
                return Ok(1);
            }
        }
        Cmd::Config(ConfigCmd::Show(a)) => print!("{}", ops::config::show(host, &name(&a.name)?)?),
        Cmd::Config(ConfigCmd::Edit(a)) => {
            let editor = std::env::var("VISUAL")
                .or_else(|_| std::env::var("EDITOR"))
                .unwrap_or_else(|_| "vi".into());
            ops::config::edit(host, &name(&a.name)?, &editor)?;
        }
    }
    Ok(0)
}

/// A line for people at a terminal; scripts get silence.
fn quiet_note(s: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{s}");
    }
}

fn method(m: MethodName, a: MethodArgs, host: &Host) -> Result<Method> {
    Ok(match m {
        MethodName::Busybox => Method::Busybox,
        MethodName::Skeleton => Method::Skeleton,
        MethodName::Debootstrap => Method::Debootstrap {
            suite: a.dist.unwrap_or_else(|| host.defaults.suite.clone()),
            mirror: a.mirror.unwrap_or_else(|| host.defaults.mirror.clone()),
            include: a.include,
            init: match a.init.unwrap_or(args::DebianInit::Systemd) {
                args::DebianInit::Systemd => hangar_model::InitSystem::Systemd,
                args::DebianInit::Sysvinit => hangar_model::InitSystem::Sysvinit,
            },
        },
        MethodName::Tarball => Method::Tarball {
            file: a
                .template
                .context("-m tarball needs -t FILE (a root filesystem archive)")?,
        },
        MethodName::Rsync => Method::Rsync {
            source: a
                .source
                .context("-m rsync needs --source DIR or HOST:DIR")?,
        },
    })
}

fn context_arg(c: Option<&str>) -> Result<Option<ContextId>> {
    c.map(|c| {
        c.parse::<ContextId>()
            .map_err(|_| anyhow::anyhow!("invalid context id {c:?}: use a number from 2 to 32767"))
    })
    .transpose()
}

/// A progress bar of bytes on stderr when it is a terminal (a spinner when the total
/// is unknown), nothing otherwise.
fn byte_bar(what: String) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb.set_message(what);
    Some(pb)
}

fn show_progress(pb: &indicatif::ProgressBar, p: ops::export::Progress) {
    if let (Some(total), None) = (p.total, pb.length()) {
        pb.set_length(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
    } else if p.total.is_none() && pb.position() == 0 {
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} {bytes} {binary_bytes_per_sec}",
            )
            .expect("a valid template"),
        );
    }
    pb.set_position(p.done);
}

fn export(host: &Host, a: args::ExportArgs) -> Result<()> {
    let req = ops::export::ExportRequest {
        name: name(&a.name)?,
        to: hangar_model::backup::Stream::parse(&a.file)?,
        force: a.force,
        snapshots: a.snapshots,
    };
    let bar = byte_bar(format!("exporting {}", a.name));
    let mut tick = |p: ops::export::Progress| {
        if let Some(pb) = &bar {
            show_progress(pb, p);
        }
    };
    let progress: Option<&mut dyn FnMut(ops::export::Progress)> =
        bar.is_some().then_some(&mut tick as _);
    let result = ops::export::export(host, &req, progress);
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let s = result?;
    if a.file != "-" {
        quiet_note(&format!(
            "exported {} to {} ({} of files, {} snapshots)",
            a.name,
            a.file,
            indicatif::HumanBytes(s.bytes),
            s.snapshots
        ));
    }
    Ok(())
}

/// The `--nic NAME:...` of `clone` and `import`.
fn nic_overrides(items: &[String]) -> Result<Vec<hangar_model::net::NicOverride>> {
    items
        .iter()
        .map(|s| Ok(hangar_model::net::NicOverride::parse(s)?))
        .collect()
}

fn import(host: &Host, a: args::ImportArgs) -> Result<()> {
    let req = ops::import::ImportRequest {
        from: hangar_model::backup::Stream::parse(&a.file)?,
        name: a.name.as_deref().map(name).transpose()?,
        pool: a
            .pool
            .as_deref()
            .map(hangar_model::pool::PoolName::new)
            .transpose()?,
        context: context_arg(a.context.as_deref())?,
        nics: nic_overrides(&a.nics)?,
    };
    let bar = byte_bar(format!("importing {}", a.file));
    let mut tick = |p: ops::export::Progress| {
        if let Some(pb) = &bar {
            show_progress(pb, p);
        }
    };
    let result = ops::import::import(host, &req, &mut tick);
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let cfg = result?;
    quiet_note(&format!(
        "imported {} (context {}); start it with `hangar start {}`",
        cfg.name, cfg.context, cfg.name
    ));
    Ok(())
}

fn build(host: &Host, b: args::BuildArgs) -> Result<()> {
    let guest = name(&b.name)?;
    let context = context_arg(b.context.as_deref())?;
    let mut margs = b.method_args;
    if !b.rest.is_empty() {
        let t = TrailingMethodArgs::try_parse_from(&b.rest).map_err(|e| {
            anyhow::anyhow!(
                "method options after --: {}",
                e.to_string().lines().next().unwrap_or("")
            )
        })?;
        let t = t.args;
        margs = MethodArgs {
            dist: t.dist.or(margs.dist),
            mirror: t.mirror.or(margs.mirror),
            init: t.init.or(margs.init),
            include: if t.include.is_empty() {
                margs.include
            } else {
                t.include
            },
            template: t.template.or(margs.template),
            source: t.source.or(margs.source),
        };
    }
    let source = match (b.method, b.image) {
        (Some(m), None) => ops::build::Source::Method(method(m, margs, host)?),
        (None, Some(i)) => ops::build::Source::Image(ImageName::new(&i)?),
        _ => bail!("give a build method (-m METHOD) or an image (--image IMAGE)"),
    };
    if b.privileged {
        eprintln!(
            "hangar: warning: {guest} will be privileged: no user namespace, its root is the host's root"
        );
    }
    let network = b
        .network
        .clone()
        .unwrap_or_else(|| host.defaults.network.clone());
    let nics = match (network.as_str(), b.nic.is_empty()) {
        ("none", true) => vec![],
        (_, true) => vec![NicRequest::parse(&[format!("network={network}")])?],
        (_, false) if b.network.as_deref() == Some("none") => {
            bail!("--network none and --nic contradict each other")
        }
        (_, false) => b
            .nic
            .iter()
            .map(|n| NicRequest::parse(std::slice::from_ref(n)))
            .collect::<Result<_, _>>()?,
    };
    let pool = b
        .pool
        .as_deref()
        .map(hangar_model::pool::PoolName::new)
        .transpose()?;
    let disk_size = b
        .disk_size
        .as_deref()
        .map(hangar_model::Size::parse)
        .transpose()?;
    let req = ops::build::BuildRequest {
        name: guest,
        source,
        hostname: b.hostname,
        context,
        privileged: b.privileged,
        nics,
        pool,
        disk_size,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb.set_message(format!("building {}", b.name));
        pb
    });
    let mut progress = |line: &str| {
        if let Some(pb) = &bar {
            pb.set_message(line.chars().take(100).collect::<String>());
        }
    };
    let result = ops::build::build(host, req, &mut progress);
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let cfg = result?;
    quiet_note(&format!(
        "built {} (context {}); start it with `hangar start {}`",
        cfg.name, cfg.context, cfg.name
    ));
    Ok(())
}

fn image(host: &Host, c: args::ImageCmd) -> Result<()> {
    use args::ImageCmd as I;
    match c {
        I::List(a) => {
            let images = ops::image::list(host)?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&images)?),
                Format::Table => print!("{}", table::images(&images)),
            }
        }
        I::Import(a) => {
            let req = ops::image::ImportRequest {
                file: a.file,
                name: ImageName::new(&a.name)?,
            };
            let bar = std::io::stderr().is_terminal().then(|| {
                let pb = indicatif::ProgressBar::new_spinner();
                pb.enable_steady_tick(std::time::Duration::from_millis(120));
                pb.set_message(format!("importing {}", a.name));
                pb
            });
            let mut progress = |line: &str| {
                if let Some(pb) = &bar {
                    pb.set_message(line.chars().take(100).collect::<String>());
                }
            };
            let result = ops::image::import(host, &req, &mut progress);
            if let Some(pb) = bar {
                pb.finish_and_clear();
            }
            let info = result?;
            quiet_note(&format!(
                "imported image {} ({}, {}); build a guest of it with `hangar build NAME \
                 --image {}`",
                info.name,
                info.source,
                indicatif::HumanBytes(info.size),
                info.name
            ));
        }
        I::Export(a) => {
            let to = hangar_model::backup::Stream::parse(&a.file)?;
            let bytes = ops::image::export(host, &ImageName::new(&a.name)?, &to, a.force)?;
            if a.file != "-" {
                quiet_note(&format!(
                    "exported image {} to {} ({} of files)",
                    a.name,
                    a.file,
                    indicatif::HumanBytes(bytes)
                ));
            }
        }
        I::Delete(a) => ops::image::delete(host, &ImageName::new(&a.name)?)?,
    }
    Ok(())
}

fn logs(host: &Host, guest: &GuestName, follow: bool) -> Result<()> {
    hangar_core::store::load(&host.paths, guest)?;
    let path = host.paths.console_log(guest);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(()),
        Err(e) => return Err(CoreError::io("opening", path, e).into()),
    };
    let mut out = std::io::stdout();
    loop {
        std::io::copy(&mut file, &mut out)?;
        if !follow {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn network(host: &Host, c: args::NetworkCmd) -> Result<()> {
    use args::NetworkCmd as N;
    use hangar_model::net::{Cidr, NetKind};
    match c {
        N::Create(a) => {
            let cidr = |s: Option<String>| s.map(|s| Cidr::parse(&s)).transpose();
            let req = ops::network::CreateRequest {
                name: a.name,
                kind: if a.kind == args::NetKindArg::Nat {
                    NetKind::Nat
                } else {
                    NetKind::Bridge
                },
                ipv4: cidr(a.ipv4)?,
                ipv6: cidr(a.ipv6)?,
                uplink: a.uplink,
                dns: !a.no_dns,
            };
            let n = ops::network::create(host, &req)?;
            quiet_note(&format!("created network {} (bridge {})", n.name, n.bridge));
        }
        N::List(a) => {
            let nets = ops::network::list(host)?;
            if a.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&nets)?);
            } else {
                println!(
                    "{:<12} {:<7} {:<16} {:<20} {:<24}",
                    "NAME", "KIND", "BRIDGE", "IPV4", "IPV6"
                );
                for n in nets {
                    let s =
                        |c: Option<Cidr>| c.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
                    let kind = if n.kind == NetKind::Nat {
                        "nat"
                    } else {
                        "bridge"
                    };
                    println!(
                        "{:<12} {:<7} {:<16} {:<20} {:<24}",
                        n.name,
                        kind,
                        n.bridge,
                        s(n.ipv4),
                        s(n.ipv6)
                    );
                }
            }
        }
        N::Show(a) => println!(
            "{}",
            serde_json::to_string_pretty(&ops::network::show(host, &a.name)?)?
        ),
        N::Delete(a) => ops::network::delete(host, &a.name)?,
        N::Forward(f) => forward(host, f)?,
        N::Check(a) => {
            let r = ops::network::check(host, a.repair)?;
            if a.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_network_check(&r);
            }
        }
    }
    Ok(())
}

fn snapshot(host: &Host, c: args::SnapshotCmd) -> Result<()> {
    use args::SnapshotCmd as S;
    use hangar_model::pool::SnapshotName;
    let named = |a: &args::SnapshotArgs| -> Result<SnapshotName> {
        let s = a
            .snapshot
            .as_deref()
            .context("name the snapshot: hangar snapshot ... GUEST SNAPSHOT")?;
        Ok(SnapshotName::new(s)?)
    };
    match c {
        S::Create(a) => {
            let snap = a.snapshot.as_deref().map(SnapshotName::new).transpose()?;
            let made = ops::snapshot::create(host, &name(&a.name)?, snap)?;
            println!("{made}");
        }
        S::List(a) => {
            let snaps = ops::snapshot::list(host, &name(&a.name)?)?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&snaps)?),
                Format::Table => {
                    println!("{:<30} CREATED", "SNAPSHOT");
                    for s in snaps {
                        println!("{:<30} {}", s.name, s.created);
                    }
                }
            }
        }
        S::Restore(a) => ops::snapshot::restore(host, &name(&a.name)?, &named(&a)?)?,
        S::Delete(a) => ops::snapshot::delete(host, &name(&a.name)?, &named(&a)?)?,
    }
    Ok(())
}

fn pool(host: &Host, c: args::PoolCmd) -> Result<()> {
    use args::PoolCmd as P;
    use hangar_model::pool::{PoolDriver, PoolName, PoolSource};
    match c {
        P::Create(a) => {
            let driver = PoolDriver::parse(&a.driver)?;
            let source = match (driver, a.size, a.source) {
                (PoolDriver::Image, None, path) => PoolSource::Directory { path },
                (PoolDriver::Image, Some(_), _) => bail!(
                    "an image pool has no size of its own: each guest's is its disk \
                     (--disk-size at build)"
                ),
                (_, Some(s), None) => PoolSource::Image {
                    size: hangar_model::Size::parse(&s)?,
                },
                (_, None, Some(dev)) => PoolSource::Device { path: dev },
                _ => bail!("give --size SIZE (an image file) or --source DEVICE"),
            };
            ops::pool::create(host, &PoolName::new(&a.name)?, driver, source)?;
            quiet_note(&format!("created pool {}", a.name));
        }
        P::List(a) => {
            let pools = ops::pool::list(host)?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&pools)?),
                Format::Table => print!("{}", table::pools(&pools)),
            }
        }
        P::Show(a) => println!(
            "{}",
            serde_json::to_string_pretty(&ops::pool::show(host, &PoolName::new(&a.name)?)?)?
        ),
        P::Delete(a) => ops::pool::delete(host, &PoolName::new(&a.name)?)?,
    }
    Ok(())
}

fn print_network_check(r: &ops::network::CheckReport) {
    let verb = if r.repaired { "removed" } else { "found" };
    println!("stale guest interfaces {verb}: {}", or_none(&r.stale_links));
    println!("stale guards {verb}: {}", or_none(&r.stale_guards));
    println!("stale port forwards {verb}: {}", or_none(&r.stale_forwards));
    println!(
        "port forwards without a guest (edit the network or attach the guest): {}",
        or_none(&r.forwards_without_target)
    );
    println!("DNS services down: {}", or_none(&r.dns_down));
    if r.repaired {
        println!("networks brought up: {}", r.networks_up.join(" "));
    }
}

/// A list for a report line: its items, or "none".
fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(" ")
    }
}

fn forward(host: &Host, c: args::ForwardCmd) -> Result<()> {
    use hangar_model::net::{PortForward, parse_port};
    match c {
        args::ForwardCmd::Add(a) => {
            let fw = PortForward::parse(&a.proto, &a.host_port, &a.target)?;
            ops::forward::add(host, &a.network, &fw)?;
            quiet_note(&format!("forwarding {fw} on network {}", a.network));
        }
        args::ForwardCmd::Remove(a) => {
            let port = parse_port("forwards.host_port", &a.host_port)?;
            let fw = ops::forward::remove(host, &a.network, &a.proto, port)?;
            quiet_note(&format!("removed {fw} from network {}", a.network));
        }
    }
    Ok(())
}
