// A validated secret as decryptAll takes it: `name` at /run/agenix/<name>, root's, 0400, no units.
import type { SecretSpec } from "../../src/manifest.js";

export function secretSpec(name: string, file: string): SecretSpec {
  return { name, file, path: `/run/agenix/${name}`, mode: 0o400, owner: "0", group: "0", symlink: true, neededForUsers: false, restartUnits: [], reloadUnits: [], placeholder: undefined, trim: false, credential: false };
}
