// The baseline: the bash that agenix's NixOS module (ryantm/agenix modules/age.nix) generates,
// rendered for one scenario the way NixOS's activation script wraps snippets (ERR trap, no
// `set -e`, per-snippet status). Per secret: a subshell running `age --decrypt -i … -o tmp`,
// `chmod`, `mv -f`; then the generation symlink swap; then the separate chown pass.
import { writeFileSync } from "node:fs";
import type { Scenario } from "./scenario.js";

/** Single-quotes a string for bash. Fixture paths are plain, this is belt and braces. */
function q(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function snippet(name: string, text: string): string {
  return [
    `#### Activation script snippet ${name}:`,
    "_localstatus=0",
    text,
    "if (( _localstatus > 0 )); then",
    `  printf "Activation script snippet '%s' failed (%s)\\n" ${q(name)} "$_localstatus"`,
    "fi",
    "",
  ].join("\n");
}

export function renderAgenixScript(s: Scenario, ageBin = "age"): string {
  const mp = q(s.secretsMountPoint);
  const identities = s.identityPaths.map((p) => `-i ${q(p)}`).join(" ");

  const newGeneration = `
_agenix_generation="$(basename "$(readlink ${q(s.secretsDir)})" || echo 0)"
(( ++_agenix_generation ))
echo "[agenix] creating new generation in ${s.secretsMountPoint}/$_agenix_generation"
mkdir -p ${mp}
chmod 0751 ${mp}
grep -q "${s.secretsMountPoint} ramfs" /proc/mounts ||
  mount -t ramfs none ${mp} -o nodev,nosuid,mode=0751
mkdir -p ${mp}/"$_agenix_generation"
chmod 0751 ${mp}/"$_agenix_generation"
`;

  const truePath = (name: string, path: string, symlink: boolean): string =>
    symlink ? `_truePath=${mp}/"$_agenix_generation"/${q(name)}` : `_truePath=${q(path)}`;

  const install = s.secrets.map((x) => {
    const defaultPath = `${s.secretsDir}/${x.name}`;
    return `
${truePath(x.name, x.path, x.symlink)}
echo "decrypting '${x.file}' to '$_truePath'..."
TMP_FILE="$_truePath.tmp"
mkdir -p "$(dirname "$_truePath")"
[ ${q(x.path)} != ${q(defaultPath)} ] && mkdir -p "$(dirname ${q(x.path)})"
(
  umask u=r,g=,o=
  test -f ${q(x.file)} || echo '[agenix] WARNING: encrypted file ${x.file} does not exist!'
  test -d "$(dirname "$TMP_FILE")" || echo "[agenix] WARNING: $(dirname "$TMP_FILE") does not exist!"
  LANG=C ${ageBin} --decrypt ${identities} -o "$TMP_FILE" ${q(x.file)}
)
chmod ${x.mode} "$TMP_FILE"
mv -f "$TMP_FILE" "$_truePath"
${x.symlink ? `[ ${q(x.path)} != ${q(defaultPath)} ] && ln -sfn ${q(defaultPath)} ${q(x.path)}` : ""}
`;
  });

  const cleanupAndLink = `
_agenix_generation="$(basename "$(readlink ${q(s.secretsDir)})" || echo 0)"
(( ++_agenix_generation ))
echo "[agenix] symlinking new secrets to ${s.secretsDir} (generation $_agenix_generation)..."
ln -sfn ${mp}/"$_agenix_generation" ${q(s.secretsDir)}
(( _agenix_generation > 1 )) && {
echo "[agenix] removing old secrets (generation $(( _agenix_generation - 1 )))..."
rm -rf ${mp}/"$(( _agenix_generation - 1 ))"
}
`;

  const testIdentities = s.identityPaths
    .map((p) => `test -f ${q(p)} || echo '[agenix] WARNING: config.age.identityPaths entry ${p} not present!'`);

  // NixOS chowns to the "keys" group, which Debian lacks; gid 0 costs the same fork+exec.
  const chown = [
    "echo '[agenix] chowning...'",
    `chown :0 ${mp} ${mp}/"$_agenix_generation"`,
    ...s.secrets.map((x) => `${truePath(x.name, x.path, x.symlink)}\nchown ${x.owner}:${x.group} "$_truePath"`),
  ].join("\n");

  return [
    "#!/usr/bin/env bash",
    "export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "_status=0",
    `trap "_status=1 _localstatus=\\$?" ERR`,
    "umask 0022",
    "",
    snippet("agenixNewGeneration", newGeneration),
    snippet("agenixInstall", ["echo '[agenix] decrypting secrets...'", ...testIdentities, ...install, cleanupAndLink].join("\n")),
    snippet("agenixChown", chown),
    "exit $_status",
    "",
  ].join("\n");
}

export function writeAgenixScript(s: Scenario, path: string): string {
  writeFileSync(path, renderAgenixScript(s), { mode: 0o755 });
  return path;
}
