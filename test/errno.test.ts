import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, openSync, renameSync } from "node:fs";
import { FsError, describeError, errnoWords, fsError } from "../src/errno.js";

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("did not throw");
}

test("errno codes get words; unknown codes stay as they are", () => {
  assert.equal(errnoWords("ENOENT"), "does not exist");
  assert.equal(errnoWords("EACCES"), "permission denied");
  assert.equal(errnoWords("EWHATEVER"), "EWHATEVER");
});

test("describeError: about a given path, about the path node names, or the message of an error without a code", () => {
  const enoent = thrown(() => openSync("/nonexistent/agenixd-x", "r"));
  assert.equal(describeError(enoent, "/etc/x"), "/etc/x does not exist");
  assert.equal(describeError(enoent), "cannot open /nonexistent/agenixd-x: does not exist");
  const rename = thrown(() => renameSync("/nonexistent/a", "/nonexistent/b"));
  assert.equal(describeError(rename), "cannot rename /nonexistent/a to /nonexistent/b: does not exist");
  const eexist = thrown(() => mkdirSync("/"));
  assert.equal(describeError(eexist), "cannot mkdir /: already exists");
  assert.equal(describeError(new Error("plain")), "plain");
  assert.equal(describeError("a string"), "a string");
});

test("describeError: a caller gives a code its meaning for that call (ELOOP from O_NOFOLLOW: a symlink)", () => {
  const eloop = Object.assign(new Error("ELOOP: too many symbolic links encountered, open '/proc/self/fd/3/x'"), { code: "ELOOP" });
  assert.equal(describeError(eloop, "/etc/x"), "/etc/x has too many levels of symlinks");
  assert.equal(describeError(eloop, "/etc/x", { ELOOP: "is a symlink" }), "/etc/x is a symlink");
});

test("fsError keeps the code for callers and never shows the /proc/self/fd path", () => {
  const e = fsError(Object.assign(new Error("EEXIST: file already exists, open '/proc/self/fd/9/key'"), { code: "EEXIST" }), "/home/u/key");
  assert.ok(e instanceof FsError);
  assert.equal((e as FsError).code, "EEXIST");
  assert.equal(e.message, "/home/u/key already exists");
  const plain = new Error("no code");
  assert.equal(fsError(plain, "/x"), plain);
});
