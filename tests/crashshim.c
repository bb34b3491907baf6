/*
 * crashshim: an LD_PRELOAD library for the crash proof (tests/_crashproof.py).
 *
 * It counts the file-mutating calls a process makes on files under one directory, with one
 * counter for the whole process (atomic, so every thread shares it; strace's "when=N" counts
 * per thread), and at the Nth call either kills the process (SIGKILL, before the call is
 * made) or fails the call with EIO or ENOSPC (without making it; close() is made, then fails).
 *
 * Environment:
 *   CRASHSHIM_PREFIX  absolute directory: only calls on paths under it, and on file
 *                     descriptors opened under it, are counted (required; without it the
 *                     shim does nothing).
 *   CRASHSHIM_AT      the number of the call to act on (1-based); 0 or unset: only count.
 *   CRASHSHIM_ACTION  "kill", "eio" or "enospc".
 *   CRASHSHIM_LOG     a file (outside the prefix) that gets one line per counted call:
 *                     "N OPERATION PATH [*]" where * marks the call acted on.
 *
 * Counted: open/openat/creat for writing or creating, write/pwrite/writev on such files,
 * close of a file written, fsync/fdatasync/ftruncate of any file or directory opened under
 * the prefix, rename/renameat/renameat2, link/linkat, symlink, unlink/unlinkat, rmdir,
 * mkdir/mkdirat.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 65536
enum { UNTRACKED = 0, TRACKED = 1, WRITTEN = 2 };

static char prefix[PATH_MAX];
static size_t prefixLength;
static long actAt;
static int actionErrno; /* 0: kill */
static int logFd = -1;
static long counter;
static unsigned char fds[MAX_FDS];
static char fdPaths[MAX_FDS][64];

#define REAL(name) static __typeof__(name) *real_##name
#define LOAD(name) do { if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name); } while (0)

static ssize_t rawWrite(int fd, const void *data, size_t size) {
    return syscall(SYS_write, fd, data, size);
}

__attribute__((constructor)) static void setUp(void) {
    const char *p = getenv("CRASHSHIM_PREFIX");
    if (!p || !*p || strlen(p) >= sizeof(prefix) - 2) return;
    strcpy(prefix, p);
    prefixLength = strlen(prefix);
    while (prefixLength > 1 && prefix[prefixLength - 1] == '/') prefix[--prefixLength] = 0;
    const char *at = getenv("CRASHSHIM_AT");
    actAt = at ? atol(at) : 0;
    const char *action = getenv("CRASHSHIM_ACTION");
    actionErrno = 0;
    if (action && strcmp(action, "eio") == 0) actionErrno = EIO;
    if (action && strcmp(action, "enospc") == 0) actionErrno = ENOSPC;
    const char *logPath = getenv("CRASHSHIM_LOG");
    if (logPath && *logPath)
        logFd = (int)syscall(SYS_openat, AT_FDCWD, logPath,
                             O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logFd >= 0 && logFd < MAX_FDS) fds[logFd] = UNTRACKED;
}

/* Whether PATH (relative to DIRFD) is under the prefix. */
static int under(int dirfd, const char *path) {
    if (!prefixLength || !path) return 0;
    if (path[0] != '/') {
        if (dirfd != AT_FDCWD) return dirfd >= 0 && dirfd < MAX_FDS && fds[dirfd] != UNTRACKED;
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd))) return 0;
        size_t n = strlen(cwd);
        return strncmp(cwd, prefix, prefixLength) == 0 &&
               (n == prefixLength || cwd[prefixLength] == '/');
    }
    return strncmp(path, prefix, prefixLength) == 0 &&
           (path[prefixLength] == 0 || path[prefixLength] == '/');
}

static int trackedFd(int fd) { return fd >= 0 && fd < MAX_FDS && fds[fd] != UNTRACKED; }

/* Count one call; 1 if the call must fail (errno set), after killing the process if asked. */
static int count(const char *operation, const char *path) {
    long n = __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST);
    int act = actAt > 0 && n == actAt;
    if (logFd >= 0) {
        char line[PATH_MAX + 128];
        int length = snprintf(line, sizeof(line), "%ld %s %s%s\n", n, operation,
                              path ? path : "-", act ? " *" : "");
        if (length > 0) rawWrite(logFd, line, (size_t)length < sizeof(line) ? (size_t)length : sizeof(line) - 1);
    }
    if (!act) return 0;
    if (actionErrno == 0) {
        syscall(SYS_kill, getpid(), SIGKILL);
        for (;;) pause();
    }
    errno = actionErrno;
    return 1;
}

static const char *fdPath(int fd) { return trackedFd(fd) ? fdPaths[fd] : "-"; }

static void remember(int fd, const char *path) {
    if (fd < 0 || fd >= MAX_FDS) return;
    fds[fd] = TRACKED;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(fdPaths[fd], sizeof(fdPaths[fd]), "%s", *base ? base : path);
}

static int writing(int flags) {
    return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) != 0;
}

static int openCommon(int dirfd, const char *path, int flags, mode_t mode,
                      int (*call)(int, const char *, int, mode_t), const char *operation) {
    int watched = under(dirfd, path);
    if (watched && writing(flags) && count(operation, path)) return -1;
    int fd = call(dirfd, path, flags, mode);
    if (fd >= 0 && fd < MAX_FDS) {
        if (watched) remember(fd, path);
        else fds[fd] = UNTRACKED;
    }
    return fd;
}

REAL(openat64);
static int callOpenat(int dirfd, const char *path, int flags, mode_t mode) {
    LOAD(openat64);
    return real_openat64(dirfd, path, flags, mode);
}

static mode_t modeOf(int flags, va_list args) {
    if (flags & (O_CREAT | __O_TMPFILE)) return (mode_t)va_arg(args, int);
    return 0;
}

int open(const char *path, int flags, ...) {
    va_list args; va_start(args, flags); mode_t mode = modeOf(flags, args); va_end(args);
    return openCommon(AT_FDCWD, path, flags, mode, callOpenat, "open");
}
int open64(const char *path, int flags, ...) {
    va_list args; va_start(args, flags); mode_t mode = modeOf(flags, args); va_end(args);
    return openCommon(AT_FDCWD, path, flags, mode, callOpenat, "open");
}
int openat(int dirfd, const char *path, int flags, ...) {
    va_list args; va_start(args, flags); mode_t mode = modeOf(flags, args); va_end(args);
    return openCommon(dirfd, path, flags, mode, callOpenat, "open");
}
int openat64(int dirfd, const char *path, int flags, ...) {
    va_list args; va_start(args, flags); mode_t mode = modeOf(flags, args); va_end(args);
    return openCommon(dirfd, path, flags, mode, callOpenat, "open");
}
int __open_2(const char *path, int flags) {
    return openCommon(AT_FDCWD, path, flags, 0, callOpenat, "open");
}
int __open64_2(const char *path, int flags) {
    return openCommon(AT_FDCWD, path, flags, 0, callOpenat, "open");
}
int creat(const char *path, mode_t mode) {
    return openCommon(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, callOpenat, "open");
}
int creat64(const char *path, mode_t mode) {
    return openCommon(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, callOpenat, "open");
}

static int beforeWrite(int fd, const char *operation) {
    if (!trackedFd(fd)) return 0;
    if (count(operation, fdPath(fd))) return 1;
    fds[fd] = WRITTEN;
    return 0;
}

REAL(write);
ssize_t write(int fd, const void *data, size_t size) {
    LOAD(write);
    if (beforeWrite(fd, "write")) return -1;
    return real_write(fd, data, size);
}
REAL(pwrite64);
ssize_t pwrite64(int fd, const void *data, size_t size, off_t offset) {
    LOAD(pwrite64);
    if (beforeWrite(fd, "write")) return -1;
    return real_pwrite64(fd, data, size, offset);
}
ssize_t pwrite(int fd, const void *data, size_t size, off_t offset) {
    return pwrite64(fd, data, size, offset);
}
REAL(writev);
ssize_t writev(int fd, const struct iovec *iov, int count_) {
    LOAD(writev);
    if (beforeWrite(fd, "write")) return -1;
    return real_writev(fd, iov, count_);
}

REAL(fsync);
int fsync(int fd) {
    LOAD(fsync);
    if (trackedFd(fd) && count("fsync", fdPath(fd))) return -1;
    return real_fsync(fd);
}
REAL(fdatasync);
int fdatasync(int fd) {
    LOAD(fdatasync);
    if (trackedFd(fd) && count("fdatasync", fdPath(fd))) return -1;
    return real_fdatasync(fd);
}

REAL(ftruncate64);
int ftruncate64(int fd, off_t length) {
    LOAD(ftruncate64);
    if (trackedFd(fd) && count("ftruncate", fdPath(fd))) return -1;
    return real_ftruncate64(fd, length);
}
int ftruncate(int fd, off_t length) { return ftruncate64(fd, length); }

REAL(close);
int close(int fd) {
    LOAD(close);
    int wasWritten = fd >= 0 && fd < MAX_FDS && fds[fd] == WRITTEN;
    if (wasWritten && count("close", fdPath(fd))) {
        int saved = errno;
        fds[fd] = UNTRACKED;
        real_close(fd);
        errno = saved;
        return -1;
    }
    if (fd >= 0 && fd < MAX_FDS) fds[fd] = UNTRACKED;
    return real_close(fd);
}

REAL(rename);
int rename(const char *from, const char *to) {
    LOAD(rename);
    const char *watched = under(AT_FDCWD, to) ? to : under(AT_FDCWD, from) ? from : NULL;
    if (watched && count("rename", watched)) return -1;
    return real_rename(from, to);
}
REAL(renameat);
int renameat(int fromDir, const char *from, int toDir, const char *to) {
    LOAD(renameat);
    const char *watched = under(toDir, to) ? to : under(fromDir, from) ? from : NULL;
    if (watched && count("rename", watched)) return -1;
    return real_renameat(fromDir, from, toDir, to);
}
REAL(renameat2);
int renameat2(int fromDir, const char *from, int toDir, const char *to, unsigned int flags) {
    LOAD(renameat2);
    const char *watched = under(toDir, to) ? to : under(fromDir, from) ? from : NULL;
    if (watched && count("rename", watched)) return -1;
    return real_renameat2(fromDir, from, toDir, to, flags);
}
REAL(link);
int link(const char *from, const char *to) {
    LOAD(link);
    if (under(AT_FDCWD, to) && count("link", to)) return -1;
    return real_link(from, to);
}
REAL(linkat);
int linkat(int fromDir, const char *from, int toDir, const char *to, int flags) {
    LOAD(linkat);
    if (under(toDir, to) && count("link", to)) return -1;
    return real_linkat(fromDir, from, toDir, to, flags);
}
REAL(symlink);
int symlink(const char *target, const char *path) {
    LOAD(symlink);
    if (under(AT_FDCWD, path) && count("symlink", path)) return -1;
    return real_symlink(target, path);
}
REAL(unlink);
int unlink(const char *path) {
    LOAD(unlink);
    if (under(AT_FDCWD, path) && count("unlink", path)) return -1;
    return real_unlink(path);
}
REAL(unlinkat);
int unlinkat(int dirfd, const char *path, int flags) {
    LOAD(unlinkat);
    if (under(dirfd, path) && count("unlink", path)) return -1;
    return real_unlinkat(dirfd, path, flags);
}
REAL(rmdir);
int rmdir(const char *path) {
    LOAD(rmdir);
    if (under(AT_FDCWD, path) && count("rmdir", path)) return -1;
    return real_rmdir(path);
}
REAL(mkdir);
int mkdir(const char *path, mode_t mode) {
    LOAD(mkdir);
    if (under(AT_FDCWD, path) && count("mkdir", path)) return -1;
    return real_mkdir(path, mode);
}
REAL(mkdirat);
int mkdirat(int dirfd, const char *path, mode_t mode) {
    LOAD(mkdirat);
    if (under(dirfd, path) && count("mkdir", path)) return -1;
    return real_mkdirat(dirfd, path, mode);
}
