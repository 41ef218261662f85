// agenixd's native addon (Node-API, C): the things Node's standard library cannot do.
//   flock(fd)           flock(2) LOCK_EX|LOCK_NB: true if taken, false if another open file
//                       description holds it (src/lock.ts polls). The kernel releases it when the
//                       last descriptor closes, also when the holder is killed.
//   disableCoreDumps()  RLIMIT_CORE 0 and prctl(PR_SET_DUMPABLE, 0): no core file, and no
//                       ptrace or /proc/PID/mem access without CAP_SYS_PTRACE, for a process that
//                       holds host keys and plaintext (src/cli.ts, at start).
//   notify(socket, pid, state)
//                       sd_pid_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, sent
//                       on behalf of `pid` (the unit's main process, the launcher, when that is not
//                       this process: root may name another pid in SCM_CREDENTIALS). A process
//                       that may not (a user's agenixd) sends as itself and then waits, as
//                       sd_notify_barrier(3) does, until systemd has read the message: systemd
//                       finds the sender's unit from its pid, which must still be alive then.
//   mountRamfs(target)  mount(2) of a ramfs on target, "nodev,nosuid,mode=0751" as mount(8) was
//                       given before: MS_NODEV|MS_NOSUID and the data "mode=0751". Forking
//                       mount(8) from the ~50 MB node process cost a start several milliseconds
//                       (docs/performance.md). src/ramfs.ts passes /proc/self/fd/N of the mount
//                       point it checked, so the kernel mounts on that very directory.
// Built by scripts/bundle.mjs with node-gyp into dist/agenixd.node, loaded by src/native.ts.
#define NAPI_VERSION 8
#define _GNU_SOURCE // struct ucred
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *errno_code(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ENOLCK: return "ENOLCK";
    case EPERM: return "EPERM";
    case EINTR: return "EINTR";
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EACCES: return "EACCES";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EBUSY: return "EBUSY";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EMFILE: return "EMFILE";
    default: return "EIO";
  }
}

// Throws `<what>: <strerror>` with the errno's name as the error's code; returns NULL for the caller to return.
static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, errno_code(err), message);
  return NULL;
}

// The one argument of a function that takes a file descriptor; false after throwing `usage`.
static bool fd_arg(napi_env env, napi_callback_info info, const char *usage, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < 1 || napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0) {
    napi_throw_type_error(env, NULL, usage);
    return false;
  }
  return true;
}

static napi_value js_flock(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, "flock(fd): fd must be a file descriptor", &fd)) return NULL;
  int rc;
  do rc = flock(fd, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EWOULDBLOCK) return throw_errno(env, "flock", errno);
  napi_value taken;
  napi_get_boolean(env, rc == 0, &taken);
  return taken;
}

static napi_value js_disable_core_dumps(napi_env env, napi_callback_info info) {
  (void)info;
  const struct rlimit none = {0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) return throw_errno(env, "setrlimit(RLIMIT_CORE, 0)", errno);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_DUMPABLE, 0)", errno);
  // Both are checked back: a seccomp filter or an LSM could make either a silent no-op.
  struct rlimit now;
  if (getrlimit(RLIMIT_CORE, &now) != 0 || now.rlim_cur != 0 || now.rlim_max != 0) return throw_errno(env, "RLIMIT_CORE is still above 0", EPERM);
  if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return throw_errno(env, "the process is still dumpable", EPERM);
  return NULL;
}

// A JS string argument, UTF-8, in memory from malloc (the caller frees it); NULL after throwing.
static char *string_arg(napi_env env, napi_value value, size_t *length) {
  size_t n;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return NULL;
  }
  char *s = malloc(n + 1);
  if (!s) {
    throw_errno(env, "malloc", ENOMEM);
    return NULL;
  }
  napi_get_value_string_utf8(env, value, s, n + 1, &n);
  *length = n;
  return s;
}

// sd_notify_barrier(3): BARRIER=1 with the write end of a pipe; systemd closes its copy once it
// has processed every earlier message of this process, which ends the wait with POLLHUP.
static int notify_barrier(int fd, struct msghdr *to) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) < 0) return errno;
  static const char barrier[] = "BARRIER=1\n";
  struct iovec data = {.iov_base = (void *)barrier, .iov_len = sizeof barrier - 1};
  union {
    struct cmsghdr header;
    char space[CMSG_SPACE(sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr message = {.msg_name = to->msg_name, .msg_namelen = to->msg_namelen, .msg_iov = &data, .msg_iovlen = 1,
                           .msg_control = &control, .msg_controllen = sizeof control.space};
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(header), &pipe_fds[1], sizeof(int));
  int rc;
  do rc = sendmsg(fd, &message, MSG_NOSIGNAL);
  while (rc < 0 && errno == EINTR);
  int err = rc < 0 ? errno : 0;
  close(pipe_fds[1]);
  if (!err) {
    // sd_notify_barrier's default timeout. events = 0: only POLLHUP (or POLLERR) ends the wait.
    struct pollfd wait_for = {.fd = pipe_fds[0], .events = 0};
    do rc = poll(&wait_for, 1, 5000);
    while (rc < 0 && errno == EINTR);
    err = rc < 0 ? errno : rc == 0 ? ETIMEDOUT : 0;
  }
  close(pipe_fds[0]);
  return err;
}

static int send_state(const char *socket_path, size_t path_length, pid_t pid, const char *state, size_t state_length) {
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  // "/path" or "@abstract" (sd_notify(3)); an abstract name is exactly as long as given.
  if (path_length < 2 || path_length >= sizeof address.sun_path || (socket_path[0] != '/' && socket_path[0] != '@')) return EAFNOSUPPORT;
  memcpy(address.sun_path, socket_path, path_length);
  if (socket_path[0] == '@') address.sun_path[0] = 0;
  socklen_t address_length = offsetof(struct sockaddr_un, sun_path) + path_length + (socket_path[0] == '/');

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  struct iovec data = {.iov_base = (void *)state, .iov_len = state_length};
  union {
    struct cmsghdr header;
    char space[CMSG_SPACE(sizeof(struct ucred))];
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr message = {.msg_name = &address, .msg_namelen = address_length, .msg_iov = &data, .msg_iovlen = 1};
  if (pid != getpid()) {
    // The kernel lets root (CAP_SYS_ADMIN) send another pid; systemd then takes the message
    // for that process's, as sd_pid_notify(3) does.
    message.msg_control = &control;
    message.msg_controllen = sizeof control.space;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_CREDENTIALS;
    header->cmsg_len = CMSG_LEN(sizeof(struct ucred));
    const struct ucred credentials = {.pid = pid, .uid = getuid(), .gid = getgid()};
    memcpy(CMSG_DATA(header), &credentials, sizeof credentials);
  }
  int rc;
  do rc = sendmsg(fd, &message, MSG_NOSIGNAL);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno == EPERM && message.msg_control) {
    // Not allowed to speak for another process (no CAP_SYS_ADMIN): as sd_pid_notify(3) does,
    // send as this process (NotifyAccess=all takes it), and wait until systemd has read it.
    message.msg_control = NULL;
    message.msg_controllen = 0;
    do rc = sendmsg(fd, &message, MSG_NOSIGNAL);
    while (rc < 0 && errno == EINTR);
    if (rc >= 0) {
      int err = notify_barrier(fd, &message);
      close(fd);
      return err;
    }
  }
  int err = rc < 0 ? errno : 0;
  close(fd);
  return err;
}

static napi_value js_notify(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t pid;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3 || napi_get_value_int32(env, argv[1], &pid) != napi_ok || pid <= 0) {
    napi_throw_type_error(env, NULL, "notify(socket, pid, state): pid must be a process id");
    return NULL;
  }
  size_t path_length, state_length;
  char *path = string_arg(env, argv[0], &path_length);
  if (!path) return NULL;
  char *state = string_arg(env, argv[2], &state_length);
  if (!state) {
    free(path);
    return NULL;
  }
  int err = send_state(path, path_length, pid, state, state_length);
  free(path);
  free(state);
  if (err) return throw_errno(env, "sd_notify", err);
  return NULL;
}

static napi_value js_mount_ramfs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "mountRamfs(target): target must be a path");
    return NULL;
  }
  size_t length;
  char *target = string_arg(env, argv[0], &length);
  if (!target) return NULL;
  if (length == 0 || strlen(target) != length) {
    free(target);
    napi_throw_type_error(env, NULL, "mountRamfs(target): target must be a path");
    return NULL;
  }
  int rc = mount("none", target, "ramfs", MS_NODEV | MS_NOSUID, "mode=0751");
  int err = errno;
  free(target);
  if (rc != 0) return throw_errno(env, "mount", err);
  return NULL;
}

/* isatty(3) of fd 2 etc.: node:tty would load node:net with it, ~2 ms of a start without the snapshot. */
static napi_value js_isatty(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, "isatty(fd): fd must be a non-negative integer", &fd)) return NULL;
  napi_value result;
  if (napi_get_boolean(env, isatty(fd) == 1, &result) != napi_ok) return NULL;
  return result;
}

/* _exit(2): the end of the process without node's teardown (src/exit.ts). */
static napi_value js_exit_now(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t status = 1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 1) napi_get_value_int32(env, argv[0], &status);
  _exit(status & 0xff);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  const napi_property_descriptor functions[] = {
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"disableCoreDumps", NULL, js_disable_core_dumps, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notify", NULL, js_notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mountRamfs", NULL, js_mount_ramfs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"isatty", NULL, js_isatty, NULL, NULL, NULL, napi_enumerable, NULL},
      {"exitNow", NULL, js_exit_now, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) != napi_ok) return NULL;
  return exports;
}
