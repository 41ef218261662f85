// Resolves owners and groups from /etc/passwd and /etc/group directly: at boot NSS may not be up.
import { readFileSync } from "node:fs";

export interface Accounts {
  /** Numeric uid for a user name or numeric string; undefined if unknown. */
  uid(owner: string): number | undefined;
  gid(group: string): number | undefined;
}

export function readAccounts(passwdFile = "/etc/passwd", groupFile = "/etc/group"): Accounts {
  const users = parseIdFile(passwdFile);
  const groups = parseIdFile(groupFile);
  return {
    uid: (owner) => lookup(users, owner),
    gid: (group) => lookup(groups, group),
  };
}

function lookup(table: Map<string, number>, nameOrId: string): number | undefined {
  if (/^[0-9]+$/.test(nameOrId)) {
    const id = Number(nameOrId);
    return id <= 0xfffffffe ? id : undefined;
  }
  return table.get(nameOrId);
}

/** name:x:id:... lines; the third field is the id in both files. */
function parseIdFile(file: string): Map<string, number> {
  const table = new Map<string, number>();
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return table;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    const [name, , id] = fields;
    if (!name || id === undefined || !/^[0-9]+$/.test(id) || table.has(name)) continue;
    table.set(name, Number(id));
  }
  return table;
}
