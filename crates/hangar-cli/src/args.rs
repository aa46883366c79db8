//! Command-line arguments: structs only, no behaviour.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "hangar",
    version,
    about = "build, run and manage isolated guest servers"
)]
pub struct Cli {
    /// Root prefix for all of hangar's files (tests and sandboxes)
    #[arg(long, global = true, env = "HANGAR_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Build a new guest (vserver NAME build)
    Build(Box<BuildArgs>),
    /// Start a guest; returns once its init runs
    Start(NameArg),
    /// Shut a guest down cleanly (its init's own signal), killing it after a timeout
    Stop(StopArgs),
    /// Stop and start again
    Restart(StopArgs),
    /// Kill a guest at once (xm destroy)
    Kill(NameArg),
    /// Remove a guest and everything it owns
    Delete(DeleteArgs),
    /// Run a command in a running guest (vserver NAME exec)
    Exec(ExecArgs),
    /// Open an interactive shell in a running guest (vserver NAME enter)
    Enter(NameArg),
    /// Show guests with their resource use (vserver-stat)
    List(ListArgs),
    /// Change limits, live when the guest runs (xm mem-set, vcpu-set, vcpu-pin)
    Set(SetArgs),
    /// Show use, peak, limit and hits per resource (/proc/virtual/N/limit)
    Limits(LimitsArgs),
    /// Manage host networks (bridge, nat)
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Add a NIC or a shared host directory to a guest, live when it runs (xm
    /// network-attach)
    Attach(AttachArgs),
    /// Remove a NIC or a shared directory from a guest, live when it runs (xm
    /// network-detach)
    Detach(DetachArgs),
    /// Show a guest's console output
    Logs(LogsArgs),
    /// Show or edit a guest's configuration
    #[command(subcommand)]
    Config(ConfigCmd),
    /// After crashes: adopt guests whose monitor died, clean up after guests that
    /// ended unwatched, repair the networks
    Repair(RepairArgs),
    /// Manage storage pools (where guests' root filesystems live)
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Every guest's disk use against its limit (disk.size)
    Df(RepairArgs),
    /// Snapshots of a guest's files (consistent while it runs: frozen for the moment)
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// A new guest from another's files, with its own identity (context, uids,
    /// hostname, machine id, MACs, addresses); instant on btrfs
    Clone(CloneArgs),
    /// Give a stopped guest another name: its config, files, snapshots, logs, DNS name,
    /// port forwards and (when it was its name) hostname, all or nothing
    Rename(RenameArgs),
    /// Share the blocks of files that are identical across guests of one pool (copy
    /// on write: a write in one guest never changes another's file); btrfs pools
    Unify(UnifyArgs),
    /// Write a guest (config, files, with --snapshots its snapshots) into one archive,
    /// consistent while it runs; FILE - is stdout
    Export(ExportArgs),
    /// Make a guest from an archive of `hangar export`, with its own context id,
    /// addresses and MACs; FILE - is stdin
    Import(ImportArgs),
    /// Images: templates of new guests (root filesystem tarballs, OCI and docker
    /// images, published guests); `hangar build NAME --image IMAGE` makes a guest of one
    #[command(subcommand)]
    Image(ImageCmd),
    /// Make a guest's files a new image (a running guest is frozen for the moment)
    Publish(PublishArgs),
    /// Freeze every process of a running guest (xm pause)
    Pause(NameArg),
    /// Let a paused guest run again (xm unpause)
    Unpause(NameArg),
}

#[derive(Args)]
pub struct CloneArgs {
    pub source: String,
    pub name: String,
    /// Hostname of the clone (default: its name)
    #[arg(long)]
    pub hostname: Option<String>,
    /// The clone's addresses on NIC NAME (ip=ADDR/PREFIX, ip6=ADDR/PREFIX, comma-separated;
    /// default: the next free ones on its network), or none to leave that NIC out; a
    /// routed NIC needs one or the other
    #[arg(long = "nic", value_name = "NAME:ip=ADDR|NAME:none")]
    pub nics: Vec<String>,
}

#[derive(Args)]
pub struct UnifyArgs {
    /// Guests of one pool
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Every guest, pool by pool (pools that cannot share blocks are passed over)
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args)]
pub struct RenameArgs {
    pub old: String,
    pub new: String,
}

#[derive(Args)]
pub struct ExportArgs {
    pub name: String,
    /// The archive to write (tar + zstd), or - for stdout
    pub file: String,
    /// Put the guest's snapshots in too
    #[arg(long)]
    pub snapshots: bool,
    /// Replace FILE if it exists
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The archive to read, or - for stdin
    pub file: String,
    /// The new guest's name (default: the archive's)
    pub name: Option<String>,
    /// The pool to put it in (default: the archive's pool if this host has one of
    /// that name, else the default pool for new guests)
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
    /// Context id, 2-32767 (default: the lowest free one)
    #[arg(long = "context", value_name = "N")]
    pub context: Option<String>,
    /// The new guest's addresses on NIC NAME (ip=ADDR/PREFIX, ip6=ADDR/PREFIX,
    /// comma-separated; default: the next free ones on its network), or none to leave
    /// that NIC out; a routed NIC needs one or the other
    #[arg(long = "nic", value_name = "NAME:ip=ADDR|NAME:none")]
    pub nics: Vec<String>,
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Every image: source, processor, size, when made, from what
    List(RepairArgs),
    /// Make image NAME from FILE: a root filesystem tarball (tar, gzip, xz or zstd), an
    /// OCI image layout (a directory or its tar archive), or what `docker save` writes
    Import(ImageImportArgs),
    /// Write an image's files as a root filesystem tarball (tar + zstd); FILE - is stdout
    Export(ImageExportArgs),
    /// Remove an image (guests built from it keep their files)
    Delete(NameArg),
}

#[derive(Args)]
pub struct ImageImportArgs {
    pub file: PathBuf,
    /// NAME or NAME:TAG
    pub name: String,
}

#[derive(Args)]
pub struct ImageExportArgs {
    pub name: String,
    /// The tarball to write, or - for stdout
    pub file: String,
    /// Replace FILE if it exists
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Args)]
pub struct PublishArgs {
    /// The guest
    pub name: String,
    /// The new image's name (NAME or NAME:TAG)
    pub image: String,
}

#[derive(Subcommand)]
pub enum SnapshotCmd {
    /// Take a snapshot (SNAP defaults to snap-UNIXTIME)
    Create(SnapshotArgs),
    /// A guest's snapshots, oldest first
    List(SnapshotListArgs),
    /// Make a stopped guest's files those of a snapshot
    Restore(SnapshotArgs),
    /// Remove a snapshot
    Delete(SnapshotArgs),
}

#[derive(Args)]
pub struct SnapshotArgs {
    pub name: String,
    pub snapshot: Option<String>,
}

#[derive(Args)]
pub struct SnapshotListArgs {
    pub name: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Subcommand)]
pub enum PoolCmd {
    /// Make a pool: btrfs on an image file of --size, or on the block device --source
    /// (formatted: what it holds is lost); or --driver image: an ext4 image file per
    /// guest, in the directory --source (default: one of hangar's own)
    Create(PoolCreateArgs),
    /// Show every pool: driver, source, size, free space, guests
    List(RepairArgs),
    /// One pool, as JSON
    Show(PoolNameArg),
    /// Remove a pool that holds no guest (its image file goes with it)
    Delete(PoolNameArg),
}

#[derive(Args)]
pub struct PoolNameArg {
    pub name: String,
}

#[derive(Args)]
pub struct PoolCreateArgs {
    pub name: String,
    /// The driver: btrfs (a subvolume per guest in one filesystem) or image (an ext4
    /// image file per guest, its size the guest's disk); the built-in pool is dir
    #[arg(long, default_value = "btrfs")]
    pub driver: String,
    /// btrfs: size of the image file hangar makes for the pool (e.g. 20G)
    #[arg(long, conflicts_with = "source")]
    pub size: Option<String>,
    /// btrfs: a block device to format for the pool instead; image: the directory
    /// (existing) to keep the guests' image files in
    #[arg(long)]
    pub source: Option<PathBuf>,
}

#[derive(Args)]
pub struct RepairArgs {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args)]
pub struct NameArg {
    pub name: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodName {
    Busybox,
    Debootstrap,
    Tarball,
    Rsync,
    Skeleton,
}

#[derive(Args)]
pub struct BuildArgs {
    pub name: String,
    /// Build method
    #[arg(short = 'm', long = "method", value_enum, conflicts_with = "image")]
    pub method: Option<MethodName>,
    /// Build from an image of the store instead (`hangar image list`): a copy of its
    /// files (a snapshot of the pool's copy of it on btrfs)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Hostname of the guest (default: its name)
    #[arg(long)]
    pub hostname: Option<String>,
    /// Context id, 2-32767 (default: the lowest free one)
    #[arg(long = "context", value_name = "N")]
    pub context: Option<String>,
    /// Run without a user namespace: guest root is host root (weaker; for compatibility)
    #[arg(long)]
    pub privileged: bool,
    /// Network for the guest's eth0 (default: the `default` NAT network; `none`: only lo)
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// The storage pool to build in (default: the host defaults' pool, else the
    /// built-in dir pool)
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
    /// Limit the guest's disk (disk.size), where its pool can (btrfs; image: the size
    /// of its filesystem, 10G when neither this nor the host defaults give one)
    #[arg(long, value_name = "SIZE")]
    pub disk_size: Option<String>,
    /// A NIC: network=NAME ip=auto|ADDR/LEN ip6=.. mode=bridged|routed mac=.. vlan=N
    /// mtu=N egress=10mbit ingress=10mbit gateway=ADDR|none gateway6=ADDR|none name=eth1
    /// (comma-separated; repeatable)
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub nic: Vec<String>,
    #[command(flatten)]
    pub method_args: MethodArgs,
    /// Method options may also follow `--`, as with vserver: -- -d bookworm
    #[arg(last = true, value_name = "METHOD ARGS")]
    pub rest: Vec<String>,
}

#[derive(Args, Default, Clone)]
pub struct MethodArgs {
    /// debootstrap: Debian suite (default from the host defaults, bookworm)
    #[arg(short = 'd', long = "dist", value_name = "SUITE")]
    pub dist: Option<String>,
    /// debootstrap: Debian mirror URL
    #[arg(long)]
    pub mirror: Option<String>,
    /// debootstrap: the init system, systemd (Debian's own, the default) or sysvinit
    #[arg(long, value_enum, value_name = "INIT")]
    pub init: Option<DebianInit>,
    /// debootstrap: extra packages, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "PKG,...")]
    pub include: Vec<String>,
    /// tarball: the root filesystem archive
    #[arg(short = 't', long = "template", value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// rsync: directory or HOST:DIR to copy (never its /dev)
    #[arg(long)]
    pub source: Option<String>,
}

/// The init systems `-m debootstrap` can install.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebianInit {
    Systemd,
    Sysvinit,
}

/// The method options as a parser of their own, for what follows `--`.
#[derive(Parser)]
#[command(name = "method options", no_binary_name = true)]
pub struct TrailingMethodArgs {
    #[command(flatten)]
    pub args: MethodArgs,
}

#[derive(Args)]
pub struct StopArgs {
    pub name: String,
    /// Seconds to wait for a clean shutdown before killing (default: the guest's)
    #[arg(long, short = 't')]
    pub timeout: Option<u32>,
}

#[derive(Args)]
pub struct DeleteArgs {
    pub name: String,
    /// Kill the guest first if it runs
    #[arg(long, short = 'f')]
    pub force: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    pub name: String,
    /// Allocate a terminal (default: when stdin is one)
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    pub tty: bool,
    /// Never allocate a terminal
    #[arg(short = 'T', long)]
    pub no_tty: bool,
    /// Extra environment, KEY=VALUE
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The command and its arguments
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args)]
pub struct LogsArgs {
    pub name: String,
    /// Keep printing new output
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Print the guest's config file
    Show(NameArg),
    /// Edit it in $EDITOR; it is validated before it is saved
    Edit(NameArg),
}

#[derive(Args)]
pub struct SetArgs {
    pub name: String,
    /// KEY=VALUE: memory.max=512M memory.high memory.swap cpu.max=25%|1.5 cpu.fill_rate=1
    /// cpu.interval=4 cpu.burst=50ms cpu.weight=200 cpu.pin=0-1 pids.max=256 io.weight=500
    /// io.read_bps=/dev/vda:10M io.write_bps io.read_iops io.write_iops nofile=4096
    /// (VALUE max = unlimited; empty = back to the host default)
    #[arg(required = true, value_name = "KEY=VALUE")]
    pub items: Vec<String>,
}

#[derive(Args)]
pub struct LimitsArgs {
    pub name: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network: a bridge hangar owns, or a NAT network with its own subnet
    Create(NetCreateArgs),
    /// List networks
    List(ListArgs),
    /// Show a network and the guests on it
    Show(NetShowArgs),
    /// Delete a network no guest uses
    Delete(NetShowArgs),
    /// Report (and with --repair remove) leftovers of crashed guests and bring networks up
    Check(NetCheckArgs),
    /// Forward a port of the host to a guest, or stop forwarding it
    #[command(subcommand)]
    Forward(ForwardCmd),
}

#[derive(Subcommand)]
pub enum ForwardCmd {
    /// Forward HOST_PORT of the host's addresses to a guest's port on NETWORK, at once
    Add(ForwardAddArgs),
    /// Stop forwarding HOST_PORT, at once
    Remove(ForwardRemoveArgs),
}

#[derive(Args)]
pub struct ForwardAddArgs {
    pub network: String,
    /// The host's port, 1-65535
    pub host_port: String,
    /// The guest (with an IPv4 address on NETWORK) and its port, like web:80
    #[arg(value_name = "GUEST:PORT")]
    pub target: String,
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub proto: String,
}

#[derive(Args)]
pub struct ForwardRemoveArgs {
    pub network: String,
    /// The host's port
    pub host_port: String,
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub proto: String,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum NetKindArg {
    Nat,
    Bridge,
}

#[derive(Args)]
pub struct NetCreateArgs {
    pub name: String,
    #[arg(long, value_enum, default_value = "nat")]
    pub kind: NetKindArg,
    /// The host's address and prefix on the bridge (default for nat: a free 10.x.y.1/24)
    #[arg(long, value_name = "ADDR/LEN")]
    pub ipv4: Option<String>,
    #[arg(long, value_name = "ADDR/LEN")]
    pub ipv6: Option<String>,
    /// Host interface to enslave to the bridge (bridge networks)
    #[arg(long)]
    pub uplink: Option<String>,
    /// No DNS service on this network
    #[arg(long)]
    pub no_dns: bool,
}

#[derive(Args)]
pub struct NetShowArgs {
    pub name: String,
}

#[derive(Args)]
pub struct NetCheckArgs {
    #[arg(long)]
    pub repair: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args)]
pub struct AttachArgs {
    pub name: String,
    /// What to attach
    pub what: Attachable,
    /// nic: KEY=VALUE: network= ip= ip6= mode= mac= vlan= mtu= egress= ingress=
    /// gateway=ADDR|none gateway6=ADDR|none name=.
    /// dir: HOST_PATH PATH [readonly]
    pub items: Vec<String>,
}

/// What `attach` and `detach` act on.
#[derive(Clone, Copy, ValueEnum)]
pub enum Attachable {
    /// A network interface
    Nic,
    /// A host directory shared with the guest
    Dir,
}

#[derive(Args)]
pub struct DetachArgs {
    pub name: String,
    pub what: Attachable,
    /// nic: the NIC's name in the guest, e.g. eth1; dir: the path in the guest
    pub target: String,
}
