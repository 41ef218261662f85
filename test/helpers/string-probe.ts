// Catches key material turned into JS strings, which cannot be zeroed and stay in the V8 heap.
// Instruments the usual ways bytes become text; a string built otherwise goes unseen, so this
// guards against the careless change (a Buffer's toString, a JWK's base64url) rather than proving
// that no string exists.

/**
 * Records every string that Buffer#toString, TextDecoder#decode, String.fromCharCode and
 * BigInt#toString produce while `run` runs, and returns those containing any of `needles`.
 */
export async function stringsContaining(needles: readonly string[], run: () => Promise<unknown>): Promise<string[]> {
  const found: string[] = [];
  const check = (s: unknown) => {
    if (typeof s === "string" && needles.some((n) => s.includes(n))) found.push(s);
    return s;
  };
  const originals = {
    toString: Buffer.prototype.toString,
    decode: TextDecoder.prototype.decode,
    fromCharCode: String.fromCharCode,
    bigint: BigInt.prototype.toString,
  };
  Buffer.prototype.toString = function (this: Buffer, ...args: Parameters<Buffer["toString"]>) {
    return check(originals.toString.apply(this, args)) as string;
  };
  TextDecoder.prototype.decode = function (this: InstanceType<typeof TextDecoder>, ...args: Parameters<InstanceType<typeof TextDecoder>["decode"]>) {
    return check(originals.decode.apply(this, args)) as string;
  };
  String.fromCharCode = (...codes: number[]) => check(originals.fromCharCode(...codes)) as string;
  BigInt.prototype.toString = function (this: bigint, ...args: [number?]) {
    return check(originals.bigint.apply(this, args)) as string;
  };
  try {
    await run();
  } finally {
    Buffer.prototype.toString = originals.toString;
    TextDecoder.prototype.decode = originals.decode;
    String.fromCharCode = originals.fromCharCode;
    BigInt.prototype.toString = originals.bigint;
  }
  return found;
}
