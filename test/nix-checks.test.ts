// nix/checks.nix refuses secrets whose files would land on one another (issue 13.5): the same
// place, a secret's `path` on another's file in secretsDir, a file where another secret needs a
// directory; and unit names in restartUnits/reloadUnits that systemctl would not take as one
// (issue 14), which nix/manifest.nix writes into manifest version 2. Evaluated with builtins only
// (nix-instantiate --eval), as the module's assertions and manifest.nix use it.
import { existsSync } from "node:fs";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseManifest } from "../src/manifest.js";
import { NixError, nixEval, nixSuite } from "./helpers/nix.js";

const nixDir = fileURLToPath(new URL("../../nix", import.meta.url));
const nix = nixSuite();

interface Secret {
  name: string;
  file: string;
  path: string;
  mode: string;
  owner: string;
  group: string;
  symlink: boolean;
  restartUnits?: string[];
  reloadUnits?: string[];
}
interface Options {
  secrets: Record<string, Secret>;
  identityPaths: string[];
  secretsDir: string;
  secretsMountPoint: string;
  keepGenerations: number;
}

/** A secret as the module's defaults make it: `path` is secretsDir/name unless given. */
function secret(attr: string, extra: Partial<Secret> = {}, secretsDir = "/run/agenix"): Secret {
  const name = extra.name ?? attr;
  return { name, file: `/nix/store/00000000000000000000000000000000-${attr}.age`, path: `${secretsDir}/${name}`, mode: "0400", owner: "0", group: "0", symlink: true, ...extra };
}

function options(secrets: Record<string, Secret>, extra: Partial<Options> = {}): Options {
  return { secrets, identityPaths: ["/etc/ssh/ssh_host_ed25519_key"], secretsDir: "/run/agenix", secretsMountPoint: "/run/agenix.d", keepGenerations: 1, ...extra };
}

const problemsOf = (o: Options) => nixEval(`import ${nixDir}/checks.nix arg`, o) as string[];

/** The manifest agenixd would read for `o`, written without checks.nix, for agenixd's own validator. */
function unchecked(o: Options) {
  const { secrets, ...rest } = o;
  return { version: 1, ...rest, secrets: Object.keys(secrets).sort().map((attr) => ({ ...secrets[attr]!, neededForUsers: false })) };
}

const refused: [string, Options, string[]][] = [
  [
    "a path on another secret's default path (secretsDir/<name>)",
    options({ db: secret("db"), evil: secret("evil", { path: "/run/agenix/db" }) }),
    ['age.secrets."db" (name "db", installed as /run/agenix/db) and age.secrets."evil".path "/run/agenix/db" are the same file: one would replace the other.'],
  ],
  [
    "a path on secretsDir/<name> of a secret installed elsewhere",
    options({ a: secret("a", { name: "tls/key", path: "/var/lib/tls/key" }), b: secret("b", { path: "/run/agenix/tls/key" }) }),
    ['age.secrets."a" (name "tls/key", installed as /run/agenix/tls/key) and age.secrets."b".path "/run/agenix/tls/key" are the same file: one would replace the other.'],
  ],
  [
    "a path below another secret's name, used as a directory",
    options({ db: secret("db"), b: secret("b", { path: "/run/agenix/db/password" }) }),
    ['age.secrets."db" (name "db", installed as /run/agenix/db) is a file where age.secrets."b".path "/run/agenix/db/password" needs a directory: the two cannot both be installed.'],
  ],
  [
    "two names where one is a directory of the other",
    options({ a: secret("a", { name: "db" }), b: secret("b", { name: "db/password" }) }),
    ['age.secrets."a" (name "db", installed as /run/agenix/db) is a file where age.secrets."b" (name "db/password", installed as /run/agenix/db/password) needs a directory: the two cannot both be installed.'],
  ],
  [
    "two paths outside secretsDir where one is a directory of the other",
    options({ a: secret("a", { path: "/srv/app/key" }), b: secret("b", { path: "/srv/app/key/old" }) }),
    ['age.secrets."a".path "/srv/app/key" is a file where age.secrets."b".path "/srv/app/key/old" needs a directory: the two cannot both be installed.'],
  ],
  [
    "one secret whose path is below its own name",
    options({ a: secret("a", { path: "/run/agenix/a/link" }) }),
    ['age.secrets."a" (name "a", installed as /run/agenix/a) is a file where age.secrets."a".path "/run/agenix/a/link" needs a directory: the two cannot both be installed.'],
  ],
  [
    "two paths that agenixd normalises to one",
    options({ a: secret("a", { path: "/srv/p" }), b: secret("b", { path: "/srv//p/" }) }),
    ['age.secrets."a" and age.secrets."b" have the same path "/srv/p": one would replace the other.'],
  ],
  [
    "two copies (symlink = false) with one name: both are files of the generation",
    options({ a: secret("a", { name: "n", path: "/srv/a", symlink: false }), b: secret("b", { name: "n", path: "/srv/b", symlink: false }) }),
    ['age.secrets."a" and age.secrets."b" have the same name "n": one would replace the other.'],
  ],
  [
    "a path that is secretsDir itself",
    options({ a: secret("a", { path: "/run/agenix" }) }),
    ['age.secrets."a".path = "/run/agenix" is age.secretsDir (/run/agenix) or contains it: the secret would replace the link to the generations.'],
  ],
  [
    "a path that contains secretsDir",
    options({ a: secret("a", { path: "/run" }) }),
    ['age.secrets."a".path = "/run" is age.secretsDir (/run/agenix) or contains it: the secret would replace the link to the generations.'],
  ],
  [
    "a path that contains secretsMountPoint",
    options({ a: secret("a", { path: "/srv/keys" }) }, { secretsMountPoint: "/srv/keys/agenix.d" }),
    ['age.secrets."a".path = "/srv/keys" contains age.secretsMountPoint (/srv/keys/agenix.d): the secret would replace the generations.'],
  ],
  [
    "three secrets at one place: each later one is named with the first",
    options({ a: secret("a", { path: "/srv/p" }), b: secret("b", { path: "/srv/p" }), c: secret("c", { path: "/srv/p" }) }),
    ['age.secrets."a" and age.secrets."b" have the same path "/srv/p": one would replace the other.', 'age.secrets."a" and age.secrets."c" have the same path "/srv/p": one would replace the other.'],
  ],
  ["secretsDir = /", options({}, { secretsDir: "/" }), ["age.secretsDir must not be /: it becomes a symlink."]],
];

const accepted: [string, Options][] = [
  ["names that share a prefix but no directory", options({ a: secret("a"), ab: secret("ab"), c: secret("c", { name: "a.d/x" }), d: secret("d", { name: "a-b/y" }) })],
  ["siblings in one directory", options({ a: secret("a", { name: "db/a" }), b: secret("b", { name: "db/b" }), c: secret("c", { path: "/run/agenix/db/c-link" }) })],
  ["paths that share a prefix but no directory", options({ a: secret("a", { path: "/srv/a" }), b: secret("b", { path: "/srv/ab" }), c: secret("c", { path: "/srv/a.d/c", symlink: false }) })],
  ["a path written as its own default path", options({ a: secret("a", { path: "/run/agenix/a" }) })],
  ["a path below secretsDir of a name that is not a secret", options({ a: secret("a", { name: "real", path: "/run/agenix/alias" }) })],
  ["a custom secretsDir", options({ a: secret("a", {}, "/run/secrets"), b: secret("b", { path: "/run/agenix/a" }) }, { secretsDir: "/run/secrets", secretsMountPoint: "/run/secrets.d" })],
];

describe("nix/checks.nix: secrets that would replace one another", nix, () => {
  for (const [what, config, messages] of refused) {
    test(`refuses ${what}, naming both secrets`, () => {
      assert.deepEqual(problemsOf(config), messages);
    });
  }

  for (const [what, config] of accepted) {
    test(`accepts ${what}`, () => {
      assert.deepEqual(problemsOf(config), []);
    });
  }

  test("manifest.nix refuses the configuration with the same message", () => {
    const [, config, messages] = refused[0]!;
    assert.throws(
      () => nixEval(`import ${nixDir}/manifest.nix arg`, config),
      (e: unknown) => e instanceof NixError && e.message.includes("agenixd: refusing this age configuration") && e.message.includes(messages[0]!),
    );
  });

  test("one mistake gives one message: a refused path is not also reported as an overlap", () => {
    const problems = problemsOf(options({ a: secret("a", { path: "/run" }), b: secret("b", { path: "/run/x" }), c: secret("c", { name: "../c", path: "/srv/c" }) }));
    assert.equal(problems.length, 2, problems.join("\n"));
    assert.match(problems[0]!, /age\.secrets\."a"\.path = "\/run" is age\.secretsDir/);
    assert.match(problems[1]!, /age\.secrets\."c"\.name = "\.\.\/c" contains a `\.\.` component/);
  });

  test("1000 secrets in shared directories, half installed elsewhere: no false overlap", () => {
    const secrets: Record<string, Secret> = {};
    for (let i = 0; i < 1000; i++) {
      secrets[`s${i}`] = secret(`s${i}`, { name: `dir${i % 10}/secret-${i}`, ...(i % 2 ? { path: `/var/lib/svc${i}/key` } : {}) });
    }
    assert.deepEqual(problemsOf(options(secrets)), []);
    secrets.clash = secret("clash", { path: "/run/agenix/dir3/secret-3" });
    assert.deepEqual(problemsOf(options(secrets)), ['age.secrets."clash".path "/run/agenix/dir3/secret-3" and age.secrets."s3" (name "dir3/secret-3", installed as /run/agenix/dir3/secret-3) are the same file: one would replace the other.']);
  });

  // A configuration that evaluates must not be refused as a whole by agenixd at boot.
  test("whatever checks.nix accepts, agenixd's manifest validator accepts", () => {
    for (const [what, config] of accepted) {
      assert.doesNotThrow(() => parseManifest(unchecked(config)), what);
    }
  });
});

const manifestOf = (o: Options) => nixEval(`import ${nixDir}/manifest.nix arg`, o) as { version: number; secrets: (Secret & { neededForUsers: boolean })[] };

/** systemd's own escapes (`\x2d`) and instance names: what `systemd-escape` and templates produce. */
const unitNames = ["nginx.service", "postgresql", "getty@tty1.service", "systemd-cryptsetup@luks\\x2droot.service", "dev-disk-by\\x2dlabel-data.swap", "a:b_c.d-e", "x-", "\\x2dleading.service", "a".repeat(255)];
const notUnitNames: [string, string][] = [
  ["-nginx.service", "a leading - (systemctl would read an option)"],
  ["", "an empty name"],
  ["nginx service", "a space"],
  ["nginx.service\n", "a newline"],
  ["../etc/x.service", "a slash"],
  ["nginx.service;reboot", "a semicolon"],
  ["ngïnx.service", "a non-ASCII letter"],
  ["*.service", "a glob (systemctl would expand it to many units)"],
];

describe("nix/checks.nix: restartUnits and reloadUnits", nix, () => {
  test("accepts systemd unit names, escaped and templated ones included, in both lists", () => {
    assert.deepEqual(problemsOf(options({ a: secret("a", { restartUnits: unitNames, reloadUnits: unitNames }) })), []);
  });

  for (const [unit, what] of notUnitNames) {
    test(`refuses a unit name with ${what}, naming the secret, the option and the unit`, () => {
      assert.deepEqual(problemsOf(options({ db: secret("db", { restartUnits: ["postgresql.service", unit] }) })), [
        `age.secrets."db".restartUnits: ${JSON.stringify(unit).replace("\\n", "\n")} is not a systemd unit name (such as "nginx.service": letters, digits and ":_.@\\-", not starting with "-").`,
      ]);
      assert.deepEqual(problemsOf(options({ tls: secret("tls", { reloadUnits: [unit] }) })), [
        `age.secrets."tls".reloadUnits: ${JSON.stringify(unit).replace("\\n", "\n")} is not a systemd unit name (such as "nginx.service": letters, digits and ":_.@\\-", not starting with "-").`,
      ]);
    });
  }

  test("refuses a unit name longer than 255 characters, saying how long it is", () => {
    assert.deepEqual(problemsOf(options({ a: secret("a", { restartUnits: ["a".repeat(256)] }) })), [
      `age.secrets."a".restartUnits: "${"a".repeat(40)}..." is 256 characters long; a systemd unit name has at most 255.`,
    ]);
  });

  test("every bad name of every secret is reported at once", () => {
    const problems = problemsOf(options({ a: secret("a", { restartUnits: ["-x", "ok.service", "y z"] }), b: secret("b", { reloadUnits: [""] }) }));
    assert.deepEqual(
      problems.map((p) => p.slice(0, p.indexOf(" is "))),
      ['age.secrets."a".restartUnits: "-x"', 'age.secrets."a".restartUnits: "y z"', 'age.secrets."b".reloadUnits: ""'],
    );
  });

  test("manifest.nix refuses a bad unit name with the same message", () => {
    assert.throws(
      () => manifestOf(options({ db: secret("db", { restartUnits: ["-x"] }) })),
      (e: unknown) => e instanceof NixError && e.message.includes('age.secrets."db".restartUnits: "-x" is not a systemd unit name'),
    );
  });

  // agenixd's runtime (src/units.ts, issue 14) checks the names again before calling systemctl:
  // what evaluates must not be refused there, and what is refused here must be refused there.
  test("checks.nix and agenixd's isUnitName (src/units.ts) agree", async (t) => {
    const units = new URL("../src/units.js", import.meta.url);
    if (!existsSync(fileURLToPath(units))) return t.skip("src/units.ts (issue 14's runtime side) is not on this branch yet; this test compares the two checks once it is");
    const { isUnitName } = (await import(units.href)) as { isUnitName(name: string): boolean };
    for (const unit of [...unitNames, "a".repeat(256), ...notUnitNames.map(([u]) => u)]) {
      const nixAccepts = problemsOf(options({ a: secret("a", { restartUnits: [unit] }) })).length === 0;
      assert.equal(nixAccepts, isUnitName(unit), JSON.stringify(unit));
    }
  });
});

describe("nix/manifest.nix: version 2", nix, () => {
  test("every secret carries restartUnits and reloadUnits, empty when not given, as given otherwise", () => {
    const m = manifestOf(
      options({
        db: secret("db", { restartUnits: ["postgresql.service", "app.service"] }),
        tls: secret("tls", { reloadUnits: ["nginx.service"], restartUnits: ["nginx-exporter.service"] }),
        plain: secret("plain"),
      }),
    );
    assert.equal(m.version, 2);
    assert.deepEqual(
      m.secrets.map((s) => [s.name, s.restartUnits, s.reloadUnits]),
      [
        ["db", ["postgresql.service", "app.service"], []],
        ["plain", [], []],
        ["tls", ["nginx-exporter.service"], ["nginx.service"]],
      ],
    );
    assert.deepEqual(Object.keys(m.secrets[0]!).sort(), ["file", "group", "mode", "name", "neededForUsers", "owner", "path", "reloadUnits", "restartUnits", "symlink"]);
  });

  // The contract (docs/manifest.md): the runtime reads version 2. Until src/manifest.ts does
  // (issue 14's runtime side), this says so rather than passing.
  test("agenixd's manifest validator reads what manifest.nix writes", (t) => {
    const probe = { version: 2, secretsDir: "/run/agenix", secretsMountPoint: "/run/agenix.d", identityPaths: [], keepGenerations: 1, secrets: [] };
    try {
      parseManifest(probe as never);
    } catch (e) {
      if (/version/.test((e as Error).message)) return t.skip(`src/manifest.ts does not read manifest version 2 yet (${(e as Error).message}); this test runs once it does`);
      throw e;
    }
    for (const [what, config] of [...accepted, ["restart and reload units", options({ a: secret("a", { restartUnits: unitNames }), b: secret("b", { reloadUnits: ["nginx.service"] }) })] as const]) {
      const parsed = parseManifest(manifestOf(config) as never) as unknown as { secrets: { restartUnits?: readonly string[]; reloadUnits?: readonly string[] }[] };
      assert.equal(parsed.secrets.length, Object.keys(config.secrets).length, what);
    }
  });
});
