// The snapshot starts with V8's string hash seed fixed at build time (--no-rehash-snapshot,
// scripts/launch.ts). That is safe only while no string an attacker chooses is hashed: used as a
// key of a Map, a Set, an object or parsed JSON, it could be made to collide (hash flooding). The
// strings an attacker may choose are those of `.age` files. This test proves none of them becomes
// a key: dynamically, by decrypting crafted files whose every field carries a canary with the
// keyed built-ins instrumented; statically, by a type-aware scan of src/age/ and src/decrypt-all.ts
// for what the instruments cannot see (`obj[key]`, `key in obj`, `{ [key]: v }`) and for Maps and
// Sets keyed by strings at all.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import ts from "typescript";
import { generateHybridIdentity } from "age-encryption";
import { type AgeIdentity, decryptAge } from "../src/age/index.js";
import { decryptAll } from "../src/decrypt-all.js";
import { loadIdentities } from "../src/identities.js";
import { type KeyPair, ageEncrypt, generateAgeKey, generateSshKey } from "./helpers/age-cli.js";

/** Only base64 characters, so it fits in stanza bodies, shares, MACs and armor lines too. */
const CANARY = "Qz7canaryQz7";

let dir: string;
let ed25519: KeyPair;
let identities: AgeIdentity[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agenixd-hash-seed-"));
  ed25519 = generateSshKey(dir, "ed25519");
  const rsa = generateSshKey(dir, "rsa", 2048);
  const x25519 = generateAgeKey(dir);
  const pq = join(dir, "pq.key");
  writeFileSync(pq, `${await generateHybridIdentity()}\n`, { mode: 0o600 });
  // Identity files are root's: they are loaded before the instruments go on.
  identities = await loadIdentities([ed25519.privatePath, rsa.privatePath, x25519.privatePath, pq], (w) => assert.fail(w.reason));
  assert.deepEqual(identities.map((i) => i.type), ["ssh-ed25519", "ssh-rsa", "X25519", "mlkem768x25519"]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Canonical unpadded base64 of `bytes` bytes whose text is the canary over and over. */
function canaryBase64(bytes: number): string {
  const chars = Math.ceil((bytes * 4) / 3);
  // The last character's unused low bits must be zero: 'A' has none set.
  return CANARY.repeat(Math.ceil(chars / CANARY.length)).slice(0, chars - 1) + "A";
}

function canaryBody(bytes: number): string {
  const text = canaryBase64(bytes);
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += 64) lines.push(text.slice(i, i + 64));
  if (text.length % 64 === 0) lines.push("");
  return lines.join("\n");
}

const STRANGERS = [
  `-> ${CANARY}type ${CANARY}a ${CANARY}b\n${canaryBody(100)}\n`,
  `-> ${CANARY}-grease\n\n`,
  `-> X25519 ${canaryBase64(32)}\n${canaryBody(32)}\n`,
  `-> ssh-ed25519 ${CANARY.slice(0, 6)} ${canaryBase64(32)}\n${canaryBody(32)}\n`,
  `-> ssh-rsa ${CANARY}\n${canaryBody(256)}\n`,
  `-> mlkem768x25519 ${canaryBase64(1120)}\n${canaryBody(32)}\n`,
].join("");

/** Files with the canary in every field a parser reads, each failing somewhere else. */
function craftedFiles(): Record<string, Buffer> {
  const real = ageEncrypt("plaintext", [ed25519.recipient]).toString("latin1");
  const firstStanza = real.indexOf("\n-> ") + 1;
  const withStrangers = real.slice(0, firstStanza) + STRANGERS + real.slice(firstStanza);
  const header = (stanzas: string, mac = canaryBase64(32)) => `age-encryption.org/v1\n${stanzas}--- ${mac}\n${randomBytes(40).toString("latin1")}`;
  const armorLines = Array.from({ length: 4 }, () => canaryBase64(48)).join("\n");
  const files: Record<string, string> = {
    "no identity matches: the error lists the types": header(STRANGERS),
    "a real stanza among strangers: unwrapped, then the MAC fails": withStrangers,
    "armored strangers": `-----BEGIN AGE ENCRYPTED FILE-----\n${Buffer.from(header(STRANGERS), "latin1").toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END AGE ENCRYPTED FILE-----\n`,
    "armor lines of canaries": `-----BEGIN AGE ENCRYPTED FILE-----\n${armorLines}\n-----END AGE ENCRYPTED FILE-----\n`,
    "an unsupported version": `age-encryption.org/${CANARY}\n`,
    "a malformed X25519 stanza": header(`-> X25519 ${CANARY} ${CANARY}\n${canaryBody(32)}\n`),
    "a malformed ssh-ed25519 stanza": header(`-> ssh-ed25519 ${CANARY}\n\n`),
    "a malformed ML-KEM stanza": header(`-> mlkem768x25519 ${CANARY}\n${canaryBody(32)}\n`),
    "a MAC of the wrong length": header("", CANARY),
    "an empty stanza argument": header(`-> ${CANARY}  ${CANARY}\n\n`),
    "a stanza body line too long": header(`-> ${CANARY}\n${CANARY.repeat(6)}\n\n`),
  };
  return Object.fromEntries(Object.entries(files).map(([what, text]) => [what, Buffer.from(text, "latin1")]));
}

interface Instruments {
  /** Every key (or JSON text) containing the canary that reached an instrumented built-in. */
  readonly seen: string[];
  restore(): void;
}

/**
 * Wraps every built-in that hashes a string it is given as a key. `new Map(entries)` and
 * `new Set(values)` call the (wrapped) `set` and `add` once the prototypes are changed.
 */
function instrument(): Instruments {
  const seen: string[] = [];
  const note = (where: string, key: unknown) => {
    if (typeof key === "string" && key.includes(CANARY)) seen.push(`${where}: ${key.slice(0, 60)}`);
  };
  const restorers: Array<() => void> = [];
  const wrap = (owner: object, ownerName: string, name: string, keysOf: (args: unknown[]) => unknown[]) => {
    const original = (owner as Record<string, (...a: unknown[]) => unknown>)[name]!;
    const label = `${ownerName}.${name}`;
    Object.defineProperty(owner, name, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]) {
        for (const key of keysOf(args)) note(label, key);
        return original.apply(this, args);
      },
    });
    restorers.push(() => Object.defineProperty(owner, name, { configurable: true, writable: true, value: original }));
  };
  const first = (args: unknown[]) => [args[0]];
  const second = (args: unknown[]) => [args[1]];
  for (const name of ["set", "get", "has", "delete"]) wrap(Map.prototype, "Map", name, first);
  for (const name of ["add", "has", "delete"]) wrap(Set.prototype, "Set", name, first);
  for (const name of ["hasOwnProperty", "propertyIsEnumerable"]) wrap(Object.prototype, "Object.prototype", name, first);
  for (const name of ["defineProperty", "getOwnPropertyDescriptor", "hasOwn"]) wrap(Object, "Object", name, second);
  wrap(Object, "Object", "defineProperties", (args) => (args[1] && typeof args[1] === "object" ? Object.keys(args[1]) : []));
  wrap(Object, "Object", "fromEntries", (args) => (Array.isArray(args[0]) ? args[0].map((e: unknown) => (Array.isArray(e) ? e[0] : undefined)) : []));
  for (const name of ["get", "set", "has", "defineProperty", "deleteProperty", "getOwnPropertyDescriptor"]) wrap(Reflect, "Reflect", name, second);
  wrap(JSON, "JSON", "parse", first);
  wrap(Symbol, "Symbol", "for", first);
  return {
    seen,
    restore: () => {
      for (const restore of restorers.reverse()) restore();
    },
  };
}

test("no string from an .age file reaches a Map, a Set, Reflect, Object.defineProperty, JSON.parse or Symbol.for", async (t) => {
  const files = craftedFiles();
  const paths = Object.entries(files).map(([what, bytes], i) => {
    const path = join(dir, `crafted-${i}.age`);
    writeFileSync(path, bytes);
    return { what, path };
  });
  const outcomes: string[] = [];
  const instruments = instrument();
  try {
    // The instruments see what they must: each of these hashes the canary.
    new Set([`x${CANARY}`]);
    new Map([[CANARY, 1]]);
    JSON.parse(`{"${CANARY}": 1}`);
    Reflect.set({}, CANARY, 1);
    Object.defineProperty({}, CANARY, { value: 1 });
    Object.fromEntries([[CANARY, 1]]);
    assert.equal(instruments.seen.length, 6, instruments.seen.join("\n"));
    instruments.seen.length = 0;

    for (const [what, bytes] of Object.entries(files)) {
      await decryptAge(bytes, identities).then(
        () => assert.fail(`${what}: decrypted`),
        (err: Error) => outcomes.push(`${what}: ${err.message.slice(0, 70)}`),
      );
    }
    const results = await decryptAll(
      paths.map(({ what, path }) => ({ name: what, file: path, path: join(dir, "out"), mode: 0o400, owner: "0", group: "0", symlink: true, neededForUsers: false, restartUnits: [], reloadUnits: [], placeholder: undefined, trim: false, credential: false })),
      identities,
    );
    assert.ok(results.every((r) => !r.ok));
  } finally {
    instruments.restore();
  }
  for (const outcome of outcomes) t.diagnostic(outcome);
  assert.deepEqual(instruments.seen, [], `canary strings used as keys:\n${instruments.seen.join("\n")}`);
  // Each file failed where it was meant to, so every path above was walked.
  assert.match(outcomes[0]!, /: no identity matches any recipient \(file is for: Qz7canary/);
  assert.match(outcomes[1]!, /: header MAC mismatch/);
  assert.match(outcomes[2]!, /: no identity matches any recipient/);
  assert.match(outcomes[3]!, /: not an age file/);
});

// ---- static: computed keys the instruments cannot see ----

const KEYED_COLLECTIONS = new Set(["Map", "Set", "ReadonlyMap", "ReadonlySet", "WeakMap", "WeakSet"]);
const KEYED_METHODS = new Set(["get", "set", "has", "delete", "add"]);
/** Calls that hash their key argument, whatever its static type: none belongs in these files. */
const KEYED_CALLS = /^(Reflect\.\w+|JSON\.parse|Object\.(fromEntries|defineProperty|defineProperties|getOwnPropertyDescriptor|hasOwn|groupBy)|Map\.groupBy|Symbol\.for)$/;

/** A key whose value cannot come from input: numbers, symbols, and string literals written in the source. */
function isConstantKeyType(type: ts.Type): boolean {
  if (type.isUnion()) return type.types.every(isConstantKeyType);
  const constant = ts.TypeFlags.NumberLike | ts.TypeFlags.ESSymbolLike | ts.TypeFlags.StringLiteral | ts.TypeFlags.BooleanLiteral | ts.TypeFlags.Undefined | ts.TypeFlags.Null;
  return (type.flags & constant) !== 0;
}

/** Every place in `files` where a string that is not a source literal may be used as a key. */
function stringKeyUses(files: readonly string[], options: ts.CompilerOptions): string[] {
  const program = ts.createProgram(files, options);
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  assert.deepEqual(diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")), [], "the scanned files must type-check");
  const checker = program.getTypeChecker();
  const found: string[] = [];
  for (const file of files) {
    const source = program.getSourceFile(file)!;
    const report = (node: ts.Node, why: string) => {
      const { line } = source.getLineAndCharacterOfPosition(node.getStart());
      found.push(`${file.split("/").slice(-2).join("/")}:${line + 1}: ${why}: ${node.getText().slice(0, 80)}`);
    };
    const checkKey = (key: ts.Expression, node: ts.Node, why: string) => {
      if (!isConstantKeyType(checker.getTypeAtLocation(key))) report(node, why);
    };
    const visit = (node: ts.Node): void => {
      if (ts.isElementAccessExpression(node)) checkKey(node.argumentExpression, node, "computed member");
      else if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.InKeyword && !ts.isPrivateIdentifier(node.left)) {
        checkKey(node.left, node, "`in` with a computed key");
      } else if (ts.isComputedPropertyName(node)) checkKey(node.expression, node.parent, "computed property name");
      else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && KEYED_COLLECTIONS.has(node.expression.text)) {
        const keyType = checker.getTypeArguments(checker.getTypeAtLocation(node) as ts.TypeReference)[0];
        if (keyType === undefined || !isConstantKeyType(keyType)) report(node, `${node.expression.text} keyed by strings`);
      } else if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
        const callee = node.expression;
        if (KEYED_CALLS.test(callee.getText())) report(node, "a call that hashes its key");
        else if (callee.name.text === "hasOwnProperty" || callee.name.text === "propertyIsEnumerable") report(node, "a call that hashes its key");
        else if (KEYED_METHODS.has(callee.name.text) && node.arguments[0] !== undefined) {
          const receiver = checker.getTypeAtLocation(callee.expression);
          const name = receiver.getSymbol()?.getName() ?? "";
          if (KEYED_COLLECTIONS.has(name)) checkKey(node.arguments[0], node, `${name}.${callee.name.text}`);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SRC = join(ROOT, "src");
const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2023,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noUncheckedIndexedAccess: true,
  skipLibCheck: true,
  types: ["node"],
  typeRoots: [join(ROOT, "node_modules/@types")],
  noEmit: true,
};

test("src/age/ and src/decrypt-all.ts use no string that is not a source literal as a key", () => {
  const files = [...readdirSync(join(SRC, "age")).filter((f) => f.endsWith(".ts")).map((f) => join(SRC, "age", f)), join(SRC, "decrypt-all.ts")];
  assert.ok(files.length >= 15, `scanned ${files.length} files`);
  assert.deepEqual(stringKeyUses(files, COMPILER_OPTIONS), []);
});

test("the static scan finds each way of using a string as a key", (t) => {
  const scratch = mkdtempSync(join(tmpdir(), "agenixd-hash-seed-scan-"));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const bad = join(scratch, "bad.ts");
  writeFileSync(bad, `
interface Stanza { readonly args: readonly string[]; readonly type: string }
export function keyed(stanzas: readonly Stanza[], seen: Record<string, number>, text: string): unknown[] {
  const types = new Set(stanzas.map((s) => s.type));
  const byType = new Map<string, Stanza>();
  const counts = new Map();
  byType.set(stanzas[0]!.args[0]!, stanzas[0]!);
  seen[text] = 1;
  const hit = text in seen;
  const literal = { [text]: true };
  const { [text]: picked } = seen;
  const parsed: unknown = JSON.parse(text);
  return [types, counts, hit, literal, picked, parsed, Reflect.get(seen, text), Object.hasOwn(seen, text), Symbol.for(text)];
}
`);
  const good = join(scratch, "good.ts");
  writeFileSync(good, `
const TABLE: Record<"a" | "b", number> = { a: 1, b: 2 };
export function fine(bytes: Uint8Array, list: readonly string[], which: "a" | "b", i: number): unknown[] {
  const byIndex = new Map<number, string>();
  byIndex.set(i, list[i]!);
  const sym = Symbol("local");
  const obj = { [sym]: 1, ["literal"]: 2 };
  return [bytes[i], list[0], TABLE[which], TABLE["a"], byIndex.get(0), obj[sym], list.includes("x")];
}
`);
  const options = { ...COMPILER_OPTIONS, types: [] };
  const found = stringKeyUses([bad], options).map((f) => f.replace(/^[^:]+:\d+: /, ""));
  assert.deepEqual(found.map((f) => f.split(":")[0]), [
    "Set keyed by strings",
    "Map keyed by strings",
    "Map keyed by strings",
    "Map.set",
    "computed member",
    "`in` with a computed key",
    "computed property name",
    "computed property name",
    "a call that hashes its key",
    "a call that hashes its key",
    "a call that hashes its key",
    "a call that hashes its key",
  ]);
  assert.deepEqual(stringKeyUses([good], options), []);
});
