// File modes as agenix accepts them: anything chmod(1) understands. agenix decrypts to a file
// created under `umask u=r,g=,o=` (mode 0400) and then runs `chmod MODE`, so a symbolic mode is
// applied to 0400, with the activation's umask (022) for clauses that name no user class.

const AGENIX_BASE_MODE = 0o400;
const ACTIVATION_UMASK = 0o022;

const CLASS_BITS = { u: 0o4700, g: 0o2070, o: 0o1007, a: 0o7777 } as const;
const CLAUSE = /^([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)$/;

/** Parses an octal ("0440", "440") or symbolic ("u=rw,g=r", "g+r") mode into mode bits; undefined if invalid. */
export function parseMode(text: string): number | undefined {
  if (/^[0-7]{1,4}$/.test(text)) return parseInt(text, 8);
  if (text === "") return undefined;
  let mode = AGENIX_BASE_MODE;
  for (const clause of text.split(",")) {
    const m = CLAUSE.exec(clause);
    if (!m) return undefined;
    const [, classes = "", actions = ""] = m;
    const who = classes === "" ? 0o7777 & ~ACTIVATION_UMASK : [...classes].reduce((bits, c) => bits | CLASS_BITS[c as keyof typeof CLASS_BITS], 0);
    for (const [, op, perms = ""] of actions.matchAll(/([-+=])([ugo]|[rwxXst]*)/g)) {
      const bits = permissionBits(perms, mode) & who;
      if (op === "+") mode |= bits;
      else if (op === "-") mode &= ~bits;
      else mode = (mode & ~(who & 0o7777)) | bits;
    }
  }
  return mode;
}

/** The bits a permission list stands for, in every class (the caller masks by class). */
function permissionBits(perms: string, current: number): number {
  if (perms === "u" || perms === "g" || perms === "o") {
    // Copy one class's rwx to all classes.
    const rwx = perms === "u" ? (current >> 6) & 7 : perms === "g" ? (current >> 3) & 7 : current & 7;
    return (rwx << 6) | (rwx << 3) | rwx;
  }
  let bits = 0;
  for (const p of perms) {
    if (p === "r") bits |= 0o444;
    else if (p === "w") bits |= 0o222;
    else if (p === "x") bits |= 0o111;
    else if (p === "X") bits |= current & 0o111 ? 0o111 : 0; // a regular file: only if some x is set
    else if (p === "s") bits |= 0o6000;
    else if (p === "t") bits |= 0o1000;
  }
  return bits;
}
