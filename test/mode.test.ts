// Symbolic modes must mean exactly what they mean in agenix: `chmod MODE` on a 0400 file, umask 022.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { parseMode } from "../src/mode.js";

const SYMBOLIC = [
  "u=r", "u=rw", "u=rw,g=r", "u=rw,g=r,o=", "g+r", "o+r", "a+r", "a=r", "+r", "=r", "=rw", "+w", "-r",
  "ug=rw", "go=r", "u=rwx,go=rx", "u+x", "a+X", "u+x,a+X", "u=rw,g=u", "g=u,o=g", "u+s", "g+s", "+t", "o+t",
  "u=r,u+w", "u=rw,g=r-w", "ug+rw,o-rwx", "a-w", "u=", "=", "u=rw,a-x", "g+rw,g-w", "u+rw,g=u-w",
];

test("symbolic modes give what chmod gives on agenix's 0400 file under umask 022", (t) => {
  const dir = mkdtempSync("/tmp/agenixd-mode-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = `${dir}/f`;
  writeFileSync(file, "");
  for (const mode of SYMBOLIC) {
    chmodSync(file, 0o400);
    execFileSync("sh", ["-c", `umask 022 && chmod -- '${mode}' '${file}'`]);
    const expected = statSync(file).mode & 0o7777;
    assert.equal(parseMode(mode)?.toString(8), expected.toString(8), `mode "${mode}"`);
  }
});

test("octal modes are taken as they are", () => {
  assert.equal(parseMode("0400"), 0o400);
  assert.equal(parseMode("440"), 0o440);
  assert.equal(parseMode("2750"), 0o2750);
});

test("invalid modes are refused", () => {
  for (const bad of ["", "rw", "0999", "u=q", "z+r", "u=rw,", ",u=r", "07777a", "u r"]) {
    assert.equal(parseMode(bad), undefined, `mode "${bad}"`);
  }
});
