import { decodeArmor, looksArmored } from "./armor.js";
import { AgeDecryptError, IdentityNotReadyError, IdentityUnavailableError } from "./errors.js";
import { type ParsedHeader, parseHeader, verifyHeaderMac } from "./header.js";
import { type AgeLimits, type Budget, DEFAULT_LIMITS, TimeBudget, formatBytes } from "./limits.js";
import { decryptPayload } from "./payload.js";
import type { AgeIdentity, Stanza } from "./stanza.js";

const FILE_KEY_BYTES = 16;

/**
 * Decrypts a whole age file (binary or ASCII-armored, detected automatically)
 * with the first identity that unwraps its file key. Returns the plaintext in
 * a Buffer the caller owns (and should zero). Throws AgeDecryptError; on error
 * no plaintext is returned and any partial plaintext has been zeroed.
 * A file over one of `limits` (src/age/limits.ts) fails with the limit in the message.
 */
export async function decryptAge(file: Uint8Array, identities: readonly AgeIdentity[], limits: AgeLimits = DEFAULT_LIMITS): Promise<Buffer> {
  const { binary, header, fileKey, budget } = await openHeader(file, identities, limits);
  try {
    return decryptPayload(fileKey, binary.subarray(header.payloadOffset), budget);
  } finally {
    fileKey.fill(0);
  }
}

/**
 * Whether `identities` open a file, without its payload: the file key unwrapped and the header's
 * MAC verified with it (so the key is the file's), then zeroed. No plaintext is ever made.
 * Throws AgeDecryptError as decryptAge does.
 */
export async function unlockHeader(file: Uint8Array, identities: readonly AgeIdentity[], limits: AgeLimits = DEFAULT_LIMITS): Promise<void> {
  (await openHeader(file, identities, limits)).fileKey.fill(0);
}

/** The header parsed and its file key unwrapped and checked against the MAC; the caller zeroes the key. */
async function openHeader(file: Uint8Array, identities: readonly AgeIdentity[], limits: AgeLimits): Promise<{ binary: Uint8Array; header: ParsedHeader; fileKey: Uint8Array; budget: Budget }> {
  if (file.length > limits.maxFileBytes) {
    throw new AgeDecryptError(`file is larger than ${formatBytes(limits.maxFileBytes)} (limit ${formatBytes(limits.maxFileBytes)})`);
  }
  const budget = new TimeBudget(limits.timeBudgetMs);
  const binary = looksArmored(file) ? decodeArmor(file) : file;
  budget.check();
  const header = parseHeader(binary, limits);
  checkScryptAlone(header.stanzas);
  const fileKey = await unwrapFileKey(header, identities, budget);
  try {
    verifyHeaderMac(fileKey, header);
  } catch (e) {
    fileKey.fill(0);
    throw e;
  }
  return { binary, header, fileKey, budget };
}

async function unwrapFileKey(header: ParsedHeader, identities: readonly AgeIdentity[], budget: Budget): Promise<Uint8Array> {
  // A plugin that failed (a YubiKey that wants a PIN) fails only the files no later identity
  // unwraps: those get its reason; one that is not ready yet (pcscd at early boot) first, since
  // the file may still open once it is.
  let unavailable: IdentityUnavailableError | undefined;
  let notReady: IdentityNotReadyError | undefined;
  for (const identity of identities) {
    budget.check();
    let fileKey: Uint8Array | null;
    try {
      fileKey = await identity.unwrapFileKey(header.stanzas, budget);
    } catch (err) {
      if (err instanceof IdentityNotReadyError) {
        notReady ??= err;
        continue;
      }
      if (err instanceof IdentityUnavailableError) {
        unavailable ??= err;
        continue;
      }
      if (err instanceof AgeDecryptError) throw err;
      throw new AgeDecryptError(`identity ${identity.source} failed: ${err instanceof Error ? err.message : "unknown error"}`);
    }
    if (fileKey === null) continue;
    if (fileKey.length !== FILE_KEY_BYTES) {
      fileKey.fill(0);
      throw new AgeDecryptError("invalid header: unwrapped file key has the wrong length");
    }
    return fileKey;
  }
  if (notReady) throw notReady;
  if (unavailable) throw unavailable;
  const fileIsFor = recipientTypes(header.stanzas) || "no recipients";
  const detail = identities.length === 0 ? "; no identities are loaded" : "";
  throw new AgeDecryptError(`no identity matches any recipient (file is for: ${fileIsFor}${detail})`);
}

const LISTED_TYPES = 5;
const TYPE_CHARS = 40;

/**
 * The distinct recipient types of a header, for an error message: the first few, each cut short.
 * A linear scan, not a Set: the header is the file's text, and agenixd keys no map or set by a
 * string it did not get from root (scripts/launch.ts, --no-rehash-snapshot).
 */
function recipientTypes(stanzas: readonly Stanza[]): string {
  const types: string[] = [];
  let more = 0;
  for (const { args } of stanzas) {
    const type = args[0]!.length > TYPE_CHARS ? `${args[0]!.slice(0, TYPE_CHARS)}…` : args[0]!;
    if (types.includes(type)) continue;
    if (types.length < LISTED_TYPES) types.push(type);
    else more++;
  }
  return types.join(", ") + (more > 0 ? ` and ${more} more` : "");
}

// Passphrase files must not be mixed with other recipients (age spec, "scrypt
// recipient stanza"). We have no passphrases, but the header is still invalid.
function checkScryptAlone(stanzas: readonly Stanza[]): void {
  if (stanzas.length > 1 && stanzas.some((s) => s.args[0] === "scrypt")) {
    throw new AgeDecryptError("invalid header: an scrypt stanza must be the only one");
  }
}
