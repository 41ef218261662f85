// A minimal writer of "newc" cpio archives (the initramfs format), for the QEMU guest's initrd.
export interface CpioEntry {
  path: string;
  /** File type and permission bits, e.g. 0o100755 for an executable, 0o040755 for a directory. */
  mode: number;
  data?: Buffer;
  /** Target of a symlink (mode 0o120777). */
  linkTarget?: string;
}

function header(fields: number[], name: string): Buffer {
  const hex = fields.map((f) => f.toString(16).padStart(8, "0")).join("");
  return Buffer.from(`070701${hex}${name}\0`, "latin1");
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

export function cpioArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (mode: number, name: string, data: Buffer) => {
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    const h = header([ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, Buffer.byteLength(name) + 1, 0], name);
    parts.push(h, pad4(h.length), data, pad4(data.length));
  };
  for (const e of entries) {
    const data = e.linkTarget !== undefined ? Buffer.from(e.linkTarget) : (e.data ?? Buffer.alloc(0));
    push(e.mode, e.path.replace(/^\//, ""), data);
  }
  push(0, "TRAILER!!!", Buffer.alloc(0));
  return Buffer.concat(parts);
}
