// agenixd's native addon (Node-API, C): the two things Node's standard library cannot do.
//   flock(fd)           flock(2) LOCK_EX|LOCK_NB: true if taken, false if another open file
//                       description holds it (src/lock.ts polls). The kernel releases it when the
//                       last descriptor closes, also when the holder is killed.
//   disableCoreDumps()  RLIMIT_CORE 0 and prctl(PR_SET_DUMPABLE, 0): no core file, and no
//                       ptrace or /proc/PID/{mem,environ,...} access without CAP_SYS_PTRACE, for
//                       a process that holds host keys and plaintext (src/cli.ts, at start).
// Built by scripts/bundle.mjs with node-gyp into dist/agenixd.node, loaded by src/native.ts.
#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>

static const char *errno_code(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ENOLCK: return "ENOLCK";
    case EPERM: return "EPERM";
    case EINTR: return "EINTR";
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

static napi_value js_flock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "flock(fd): fd must be a file descriptor");
    return NULL;
  }
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

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  const napi_property_descriptor functions[] = {
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"disableCoreDumps", NULL, js_disable_core_dumps, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) != napi_ok) return NULL;
  return exports;
}
