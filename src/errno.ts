// Words for the errno codes node puts on its errors, so a log line says "does not exist" where
// node says "ENOENT: no such file or directory, open '/proc/self/fd/23/x'".

const WORDS: Readonly<Record<string, string>> = {
  ENOENT: "does not exist",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EEXIST: "already exists",
  ENOTDIR: "is not a directory (or a parent of it is not)",
  EISDIR: "is a directory",
  ELOOP: "has too many levels of symlinks",
  ENOTEMPTY: "is not empty",
  EROFS: "is on a read-only filesystem",
  ENOSPC: "no space left on the filesystem",
  EDQUOT: "disk quota exceeded",
  EXDEV: "is on another filesystem",
  EBUSY: "is busy",
  EMFILE: "too many open files in this process",
  ENFILE: "too many open files on the system",
  ENAMETOOLONG: "name is too long",
  EINVAL: "invalid argument",
  EIO: "input/output error",
  ENOEXEC: "is not an executable",
  ETXTBSY: "is busy (being written)",
  ENXIO: "has no device behind it",
  ENODEV: "has no device behind it",
  EAGAIN: "is temporarily unavailable",
  ENOMEM: "out of memory",
  EFBIG: "is too large",
};

/** The errno code of a node error, if it has one. */
export function errnoCode(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Words for an errno code ("ENOENT" → "does not exist"); the code itself when it has none here. */
export function errnoWords(code: string): string {
  return WORDS[code] ?? code;
}

/**
 * What went wrong, in words, about `path`: "/etc/x does not exist". `meaning` overrides the words
 * for codes whose sense depends on the call (ELOOP from an O_NOFOLLOW open means "is a symlink").
 * Errors without an errno code keep their message.
 */
export function describeError(e: unknown, path?: string, meaning: Readonly<Record<string, string>> = {}): string {
  const code = errnoCode(e);
  if (code === undefined || !/^E[A-Z0-9]+$/.test(code)) return e instanceof Error ? e.message : String(e);
  const words = meaning[code] ?? errnoWords(code);
  if (path !== undefined) return `${path} ${words}`;
  // node's own: "ENOENT: no such file or directory, mkdir '/x'" becomes "cannot mkdir /x: does not exist".
  const { syscall, path: its, dest } = e as NodeJS.ErrnoException & { dest?: string };
  if (its !== undefined) return `cannot ${syscall ?? "use"} ${its}${dest === undefined ? "" : ` to ${dest}`}: ${words}`;
  return words;
}

/** An error with words for a message that keeps the errno `code` (callers and tests compare it). */
export class FsError extends Error {
  override name = "FsError";
  constructor(
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A node error as an FsError naming `path` (not the /proc/self/fd path it went through), or, without
 * `path`, the path node's error names. Errors without an errno code are returned as they are.
 */
export function fsError(e: unknown, path?: string, meaning?: Readonly<Record<string, string>>): Error {
  if (e instanceof FsError) return e;
  const code = errnoCode(e);
  return code === undefined ? (e as Error) : new FsError(code, describeError(e, path, meaning));
}
