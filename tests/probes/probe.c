/* Probes of what a container lets its processes do, one line each.
 *
 * Built static by tests/test_security_probes.py (gcc -static), run inside a
 * busybox sandbox, a host sandbox and a runc container with Docker's default
 * seccomp profile, and the lines compared. Each probe runs in a child of its
 * own and prints "NAME allowed", "NAME denied ERRNO", "NAME empty" (a file
 * that opens but shows nothing) or "NAME killed SIGNAL".
 *
 * Arguments: KEY=VALUE settings for the probes that need a target outside:
 *   abstract=NAME     an abstract unix socket the host listens on
 *   loopback=PORT     a TCP port the host listens on at 127.0.0.1
 *   outside=PID       a pid of a process outside the container (the test's)
 *   only=NAME         run only this probe
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *abstract_name = "sandbox-probe-none";
static int loopback_port = 1;
static pid_t outside_pid = 999999;
static pid_t parent_pid;  /* the probe's parent (in a sandbox, its init), not a probe's own */

/* Each probe returns 0 (allowed), -errno (denied) or 1 (opened, but empty). */
static int result(long rc) { return rc < 0 ? -errno : 0; }

static int p_unshare(int flags) { return result(unshare(flags)); }
static int p_userns(void) { return p_unshare(CLONE_NEWUSER); }
static int p_mountns(void) { return p_unshare(CLONE_NEWNS); }
static int p_netns(void) { return p_unshare(CLONE_NEWNET); }
static int p_pidns(void) { return p_unshare(CLONE_NEWPID); }
static int p_cgroupns(void) { return p_unshare(CLONE_NEWCGROUP); }

static int p_clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid < 0) return -errno;
    waitpid(pid, NULL, 0);
    return 0;
}

static int p_clone3(void) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) _exit(0);
    if (pid < 0) return -errno;
    waitpid(pid, NULL, 0);
    return 0;
}

static int p_mount(void) { return result(mount("none", "/tmp", "tmpfs", 0, NULL)); }
static int p_fsopen(void) { return result(syscall(SYS_fsopen, "tmpfs", 0)); }
static int p_raw_socket(void) { return result(socket(AF_PACKET, SOCK_RAW, 0)); }
static int p_raw_inet(void) { return result(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)); }

static int p_keyring(void) {
    return result(syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
}

static int p_keyctl(void) {
    return result(syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "probe"));
}

static int p_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return result(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
}

static int p_perf(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.exclude_kernel = 1;
    return result(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
}

static int p_ptrace_parent(void) { return result(ptrace(PTRACE_ATTACH, parent_pid, 0, 0)); }
static int p_ptrace_outside(void) { return result(ptrace(PTRACE_ATTACH, outside_pid, 0, 0)); }

static int p_vm_read_parent(void) {
    char buf[8];
    struct iovec local = {buf, sizeof buf}, remote = {(void *)0x400000, sizeof buf};
    return result(process_vm_readv(parent_pid, &local, 1, &remote, 1, 0));
}

static int p_module(void) { return result(syscall(SYS_finit_module, 0, "", 0)); }
static int p_init_module(void) { return result(syscall(SYS_init_module, NULL, 0, "")); }
static int p_kexec(void) { return result(syscall(SYS_kexec_load, 0, 0, NULL, 0)); }
static int p_iopl(void) { return result(syscall(SYS_iopl, 3)); }
static int p_swapon(void) { return result(swapon("/tmp/probe-swap", 0)); }
static int p_userfaultfd(void) { return result(syscall(SYS_userfaultfd, 1 /* UFFD_USER_MODE_ONLY */)); }
static int p_personality(void) { return result(personality(READ_IMPLIES_EXEC)); }
static int p_io_uring(void) { char params[120] = {0}; return result(syscall(SYS_io_uring_setup, 1, params)); }
static int p_sethostname(void) { return result(sethostname("probe", 5)); }

static int p_open_by_handle(void) {
    struct { unsigned int bytes; int type; unsigned char f[8]; } handle = {8, 1, {0}};
    return result(syscall(SYS_open_by_handle_at, AT_FDCWD, &handle, O_RDONLY));
}

static int p_setns(void) {
    int fd = open("/proc/1/ns/mnt", O_RDONLY);
    if (fd < 0) return -errno;
    return result(setns(fd, 0));
}

static int p_write(const char *path, const char *data) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -errno;
    return result(write(fd, data, strlen(data)));
}

static int p_proc_sys(void) { return p_write("/proc/sys/kernel/hostname", "probe"); }
static int p_sysrq(void) { return p_write("/proc/sysrq-trigger", "h"); }
static int p_sys(void) { return p_write("/sys/class/net/lo/mtu", "1500"); }

static int p_read(const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    long n = read(fd, buf, sizeof buf);
    if (n < 0) return -errno;
    return n == 0 ? 1 : 0;
}

static int p_shadow(void) { return p_read("/etc/shadow"); }
static int p_gshadow(void) { return p_read("/etc/gshadow"); }
static int p_kcore(void) { return p_read("/proc/kcore"); }
static int p_kmsg(void) { return p_read("/proc/kmsg"); }
static int p_keys(void) { return p_read("/proc/keys"); }

static int p_disk(void) {
    const char *names[] = {"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"};
    int err = -ENOENT;
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
        int fd = open(names[i], O_RDONLY);
        if (fd >= 0) return 0;
        if (errno != ENOENT) err = -errno;
    }
    return err;
}

static int p_mknod_disk(void) {
    unlink("/tmp/probe-disk");
    if (mknod("/tmp/probe-disk", S_IFBLK | 0600, makedev(8, 0)) < 0
        && mknod("/tmp/probe-disk", S_IFBLK | 0600, makedev(253, 0)) < 0)
        return -errno;
    int fd = open("/tmp/probe-disk", O_RDONLY);
    int err = fd < 0 ? -errno : 0;
    unlink("/tmp/probe-disk");
    return err;
}

static int p_abstract(void) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(abstract_name);
    memcpy(addr.sun_path + 1, abstract_name, len);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -errno;
    return result(connect(fd, (struct sockaddr *)&addr, offsetof(struct sockaddr_un, sun_path) + 1 + len));
}

static int p_loopback(void) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(loopback_port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -errno;
    return result(connect(fd, (struct sockaddr *)&addr, sizeof addr));
}

struct probe { const char *name; int (*run)(void); };

static const struct probe probes[] = {
    {"userns", p_userns}, {"mountns", p_mountns}, {"netns", p_netns}, {"pidns", p_pidns},
    {"cgroupns", p_cgroupns}, {"clone_newuser", p_clone_newuser}, {"clone3", p_clone3},
    {"mount", p_mount}, {"fsopen", p_fsopen}, {"setns", p_setns},
    {"raw_socket", p_raw_socket}, {"raw_inet", p_raw_inet},
    {"keyring", p_keyring}, {"keyctl", p_keyctl}, {"bpf", p_bpf}, {"perf", p_perf},
    {"ptrace_parent", p_ptrace_parent}, {"ptrace_outside", p_ptrace_outside},
    {"vm_read_parent", p_vm_read_parent},
    {"module", p_module}, {"init_module", p_init_module}, {"kexec", p_kexec}, {"iopl", p_iopl},
    {"swapon", p_swapon}, {"userfaultfd", p_userfaultfd}, {"personality", p_personality},
    {"io_uring", p_io_uring}, {"sethostname", p_sethostname}, {"open_by_handle", p_open_by_handle},
    {"proc_sys", p_proc_sys}, {"sysrq", p_sysrq}, {"sys", p_sys},
    {"shadow", p_shadow}, {"gshadow", p_gshadow}, {"kcore", p_kcore}, {"kmsg", p_kmsg},
    {"keys", p_keys}, {"disk", p_disk}, {"mknod_disk", p_mknod_disk},
    {"abstract", p_abstract}, {"loopback", p_loopback},
};

static void run_one(const struct probe *p) {
    int pipefd[2];
    if (pipe(pipefd) < 0) { perror("pipe"); exit(2); }
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(2); }
    if (pid == 0) {
        close(pipefd[0]);
        int rc = p->run();
        if (write(pipefd[1], &rc, sizeof rc) < 0) _exit(3);
        _exit(0);
    }
    close(pipefd[1]);
    int rc = 0, status = 0;
    long got = read(pipefd[0], &rc, sizeof rc);
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("%s killed %d\n", p->name, WTERMSIG(status));
    else if (got != sizeof rc)
        printf("%s killed 0\n", p->name);
    else if (rc == 0)
        printf("%s allowed\n", p->name);
    else if (rc == 1)
        printf("%s empty\n", p->name);
    else
        printf("%s denied %d\n", p->name, -rc);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *only = NULL;
    parent_pid = getppid();
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "abstract=", 9)) abstract_name = argv[i] + 9;
        else if (!strncmp(argv[i], "loopback=", 9)) loopback_port = atoi(argv[i] + 9);
        else if (!strncmp(argv[i], "outside=", 8)) outside_pid = atoi(argv[i] + 8);
        else if (!strncmp(argv[i], "only=", 5)) only = argv[i] + 5;
    }
    for (unsigned i = 0; i < sizeof probes / sizeof *probes; i++)
        if (!only || !strcmp(only, probes[i].name))
            run_one(&probes[i]);
    return 0;
}
