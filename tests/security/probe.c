/*
 * probe: the static helper of the security battery (battery.sh). It runs
 * inside a guest as the guest's root and tries one privileged operation per
 * call, so the battery can tell "refused by the kernel" from "command missing".
 *
 * Build: gcc -static -O2 -o probe probe.c
 *
 * Every subcommand prints one line and exits:
 *   0  "blocked: <errno name>[ ...]"  the operation was refused
 *   1  "allowed[: detail]"            the operation succeeded
 *   2  "error: <detail>"              the probe could not set up the test
 *
 * Nothing here changes the machine even when it is allowed: clocks are set to
 * the time just read, files are opened for writing but never written (except
 * `rewrite`, which writes back the bytes it just read), module images are
 * garbage the loader rejects, and ptrace uses PTRACE_SEIZE, which does not
 * stop the tracee and is undone when the probe exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int err)
{
	static char buf[32];
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
	const char *name = strerrorname_np(err);
	if (name)
		return name;
#endif
	snprintf(buf, sizeof(buf), "errno %d", err);
	return buf;
}

static int blocked(const char *what, int err)
{
	printf("blocked: %s%s%s\n", errname(err), what ? " " : "", what ? what : "");
	return 0;
}

static int allowed(const char *detail)
{
	printf("allowed%s%s\n", detail ? ": " : "", detail ? detail : "");
	return 1;
}

static int error(const char *detail, int err)
{
	printf("error: %s: %s\n", detail, errname(err));
	return 2;
}

/* Errors that mean "refused by policy" rather than "got past the checks". */
static int is_refusal(int err)
{
	return err == EPERM || err == EACCES || err == EROFS || err == ENOSYS;
}

/* init_module with a garbage image: a refusal is EPERM (no CAP_SYS_MODULE in
 * the initial namespace) or ENOSYS (seccomp, or a kernel without modules);
 * anything else means the call reached the module loader. */
static int cmd_init_module(void)
{
	static const char image[64] = "not an ELF module";
	if (syscall(SYS_init_module, image, sizeof(image), "") == 0)
		return allowed("garbage module loaded (!)");
	if (is_refusal(errno))
		return blocked(NULL, errno);
	printf("allowed: reached the module loader (%s)\n", errname(errno));
	return 1;
}

static int cmd_finit_module(void)
{
	int fd = (int)syscall(SYS_memfd_create, "probe-module", 0);
	if (fd < 0)
		return error("memfd_create", errno);
	if (write(fd, "not an ELF module", 17) != 17)
		return error("write memfd", errno);
	if (syscall(SYS_finit_module, fd, "", 0) == 0)
		return allowed("garbage module loaded (!)");
	if (is_refusal(errno))
		return blocked(NULL, errno);
	/* EBADF/EINVAL/ENOEXEC come after the capability check. */
	printf("allowed: reached the module loader (%s)\n", errname(errno));
	return 1;
}

/* Set the real-time clock to the time just read, with both interfaces. */
static int cmd_settime(void)
{
	struct timespec now;
	struct timeval tv;
	int err_clock, err_tod;

	clock_gettime(CLOCK_REALTIME, &now);
	err_clock = clock_settime(CLOCK_REALTIME, &now) == 0 ? 0 : errno;
	gettimeofday(&tv, NULL);
	err_tod = settimeofday(&tv, NULL) == 0 ? 0 : errno;

	if (err_clock == 0 || err_tod == 0) {
		printf("allowed: %s\n", err_clock == 0 ? "clock_settime" : "settimeofday");
		return 1;
	}
	printf("blocked: %s (clock_settime), %s (settimeofday)\n", errname(err_clock),
	       errname(err_tod));
	return 0;
}

static pid_t parse_pid(const char *arg)
{
	char *end;
	long pid = strtol(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || pid <= 0 || pid > INT_MAX)
		return -1;
	return (pid_t)pid;
}

/* PTRACE_SEIZE does not stop the tracee; exiting detaches it. */
static int cmd_ptrace(pid_t pid)
{
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) == 0)
		return allowed("PTRACE_SEIZE attached");
	return blocked(NULL, errno);
}

static int cmd_kill(pid_t pid)
{
	if (kill(pid, 0) == 0)
		return allowed("signal 0 delivered");
	return blocked(NULL, errno);
}

/* An open for writing that lands on /dev/null is a masked path, not a hole. */
static int is_dev_null(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

/* Open PATH for writing (no O_CREAT, no O_TRUNC) and close it unwritten. */
static int cmd_open_wr(const char *path)
{
	int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return blocked(NULL, errno);
	if (is_dev_null(fd)) {
		close(fd);
		printf("blocked: masked with /dev/null\n");
		return 0;
	}
	close(fd);
	return allowed("opened for writing (nothing written)");
}

/*
 * Open a /proc/PID/exe link for writing (the runc CVE-2019-5736 shape). A
 * success only matters when the file is not the guest's own: the guest may
 * write its own binaries, but never one of the host's.
 */
static int cmd_write_exe(const char *path)
{
	char target[PATH_MAX];
	struct stat via_link, via_path;
	ssize_t n;
	int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return blocked(NULL, errno);
	n = readlink(path, target, sizeof(target) - 1);
	target[n < 0 ? 0 : n] = '\0';
	if (fstat(fd, &via_link) == 0 && n > 0 && stat(target, &via_path) == 0 &&
	    via_link.st_dev == via_path.st_dev && via_link.st_ino == via_path.st_ino) {
		close(fd);
		printf("blocked: writable, but %s is the guest's own file\n", target);
		return 0;
	}
	close(fd);
	printf("allowed: opened %s (%s) for writing (nothing written)\n", path, target);
	return 1;
}

/*
 * Write back exactly the bytes just read from PATH (core_pattern,
 * release_agent, ...). Some files refuse only at write time (cgroup v1
 * release_agent outside the initial namespace), so opening is not enough.
 */
static int cmd_rewrite(const char *path)
{
	char buf[4096];
	ssize_t len, n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return error("open for reading", errno);
	len = read(fd, buf, sizeof(buf));
	close(fd);
	if (len < 0)
		return error("read", errno);

	fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return blocked("at open", errno);
	if (is_dev_null(fd)) {
		close(fd);
		printf("blocked: masked with /dev/null\n");
		return 0;
	}
	/* An empty value is written as a lone newline, as `echo > file` does. */
	n = len > 0 ? write(fd, buf, (size_t)len) : write(fd, "\n", 1);
	if (n < 0 && is_refusal(errno)) {
		int err = errno;
		close(fd);
		return blocked("at write", err);
	}
	close(fd);
	if (n < 0) {
		printf("allowed: opened for writing; write of the same value gave %s\n",
		       errname(errno));
		return 1;
	}
	return allowed("wrote the current value back");
}

/*
 * The "shocker" escape: open_by_handle_at needs CAP_DAC_READ_SEARCH in the
 * initial namespace, except for the O_DIRECTORY case that kernels >= 6.10
 * allow inside one's own mounts. So (1) the handle of "/" opened without
 * O_DIRECTORY must be refused, and (2) a forged handle of the filesystem's
 * root inode (ext4 and friends: inode 2, generation 0) must not open a
 * directory other than our own "/".
 */
static int cmd_open_by_handle(void)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[MAX_HANDLE_SZ];
	} h;
	struct stat root, got;
	int mount_id, mount_fd, fd, err_plain;

	if (stat("/", &root) != 0)
		return error("stat /", errno);
	mount_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mount_fd < 0)
		return error("open /", errno);
	h.fh.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, "/", &h.fh, &mount_id, 0) != 0) {
		/* Without a handle type we cannot forge one either. */
		printf("blocked: name_to_handle_at %s\n", errname(errno));
		return 0;
	}

	fd = open_by_handle_at(mount_fd, &h.fh, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return allowed("open_by_handle_at without O_DIRECTORY (CAP_DAC_READ_SEARCH)");
	err_plain = errno;

	/* FILEID_INO32_GEN: { u32 inode, u32 generation }. */
	if (h.fh.handle_type == 1 && h.fh.handle_bytes == 8) {
		unsigned int forged[2] = {2, 0};
		memcpy(h.fh.f_handle, forged, sizeof(forged));
		fd = open_by_handle_at(mount_fd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &got) == 0 &&
		    (got.st_dev != root.st_dev || got.st_ino != root.st_ino))
			return allowed("forged handle opened the filesystem root outside the guest");
		printf("blocked: %s; forged root handle: %s\n", errname(err_plain),
		       fd >= 0 ? "opened our own /" : errname(errno));
		return 0;
	}
	printf("blocked: %s; handle type %d not forged\n", errname(err_plain),
	       h.fh.handle_type);
	return 0;
}

/*
 * The classic chroot break-out: chroot into a subdirectory, walk ".." from a
 * directory fd kept outside it, chroot("."). It escapes a guest whose root is
 * only a chroot; after pivot_root in a mount namespace ".." stops at the root.
 */
static int cmd_chroot_escape(const char *scratch)
{
	char sub[PATH_MAX];
	struct stat before, after;
	int outside;

	if (stat("/", &before) != 0)
		return error("stat /", errno);
	outside = open("/", O_RDONLY | O_DIRECTORY);
	if (outside < 0)
		return error("open /", errno);
	snprintf(sub, sizeof(sub), "%s/probe-chroot.%d", scratch, (int)getpid());
	if (mkdir(sub, 0700) != 0)
		return error("mkdir", errno);
	if (chroot(sub) != 0) {
		int err = errno;
		rmdir(sub);
		return blocked("chroot", err);
	}
	/* From here on paths are relative to the new root: clean up via the fd. */
	if (fchdir(outside) != 0)
		return error("fchdir", errno);
	for (int i = 0; i < 256; i++)
		if (chdir("..") != 0)
			return error("chdir ..", errno);
	if (chroot(".") != 0)
		return error("chroot .", errno);
	if (stat("/", &after) != 0)
		return error("stat / after", errno);
	/* The scratch dir was given as an absolute path inside the guest. */
	rmdir(sub);
	if (after.st_dev != before.st_dev || after.st_ino != before.st_ino)
		return allowed("walked above the guest's root");
	printf("blocked: \"..\" stops at the guest's root\n");
	return 0;
}

/*
 * List the file descriptors this freshly exec'd process inherited beyond 0, 1
 * and 2. Close-on-exec descriptors are gone by now, so what is left came in
 * through the exec chain: a leak from the runtime unless it is a pipe (which
 * only carries bytes, and is how callers capture output).
 */
static int cmd_fds(void)
{
	char list[4096] = "", link[64], target[PATH_MAX], item[PATH_MAX + 32];
	int leaked = 0, pipes = 0;

	for (int fd = 3; fd < 1024; fd++) {
		ssize_t n;
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		snprintf(item, sizeof(item), " %d=%s", fd, n < 0 ? "?" : target);
		strncat(list, item, sizeof(list) - strlen(list) - 1);
		if (strncmp(target, "pipe:", 5) == 0)
			pipes++;
		else
			leaked++;
	}
	if (leaked) {
		printf("allowed: inherited%s\n", list);
		return 1;
	}
	printf("blocked: %s%s\n", pipes ? "only pipes inherited:" : "no fds beyond 0 1 2", list);
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: probe init_module | finit_module | settime | open_by_handle | fds\n"
		"       probe ptrace PID | kill PID\n"
		"       probe open_wr PATH | write_exe PATH | rewrite PATH\n"
		"       probe chroot_escape SCRATCH_DIR\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(cmd, "init_module") == 0)
		return cmd_init_module();
	if (argc == 2 && strcmp(cmd, "finit_module") == 0)
		return cmd_finit_module();
	if (argc == 2 && strcmp(cmd, "settime") == 0)
		return cmd_settime();
	if (argc == 2 && strcmp(cmd, "open_by_handle") == 0)
		return cmd_open_by_handle();
	if (argc == 2 && strcmp(cmd, "fds") == 0)
		return cmd_fds();
	if (argc == 3 && (strcmp(cmd, "ptrace") == 0 || strcmp(cmd, "kill") == 0)) {
		pid_t pid = parse_pid(argv[2]);
		if (pid < 0)
			return usage();
		return cmd[0] == 'p' ? cmd_ptrace(pid) : cmd_kill(pid);
	}
	if (argc == 3 && strcmp(cmd, "open_wr") == 0)
		return cmd_open_wr(argv[2]);
	if (argc == 3 && strcmp(cmd, "write_exe") == 0)
		return cmd_write_exe(argv[2]);
	if (argc == 3 && strcmp(cmd, "rewrite") == 0)
		return cmd_rewrite(argv[2]);
	if (argc == 3 && strcmp(cmd, "chroot_escape") == 0)
		return cmd_chroot_escape(argv[2]);
	return usage();
}
