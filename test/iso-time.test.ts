// src/iso-time.ts against Date's own toISOString(), which it stands in for.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isoTime } from "../src/iso-time.js";

test("isoTime writes what Date's toISOString writes", () => {
  const at = (iso: string) => Date.parse(iso);
  const edges = [
    0, -1, 1, 86_399_999, 86_400_000, -86_400_000, at("1969-12-31T23:59:59.999Z"), at("2000-02-29T12:00:00.000Z"),
    at("2000-03-01T00:00:00.000Z"), at("1900-02-28T23:59:59.999Z"), at("1900-03-01T00:00:00.000Z"), at("2100-02-28T00:00:00.000Z"),
    at("2100-03-01T00:00:00.000Z"), at("2024-02-29T23:59:59.999Z"), at("2026-12-31T23:59:59.999Z"), at("0000-01-01T00:00:00.000Z"),
    at("9999-12-31T23:59:59.999Z"), at("1600-02-29T00:00:00.000Z"), at("0001-03-01T00:00:00.000Z"),
  ];
  for (const ms of edges) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  // Every day of 1600-2400 (four 400-year cycles, leap rules included), at a varying time of day.
  for (let ms = at("1600-01-01T00:00:00.000Z"), i = 0; ms < at("2400-12-31T00:00:00.000Z"); ms += 86_400_000, i++) {
    const t = ms + ((i * 7_919_351) % 86_400_000);
    if (isoTime(t) !== new Date(t).toISOString()) assert.equal(isoTime(t), new Date(t).toISOString());
  }
});

test("outside years 0-9999, and for a fraction of a millisecond, Date itself answers", () => {
  for (const ms of [Date.parse("+010000-01-01T00:00:00.000Z"), Date.parse("-000001-12-31T23:59:59.999Z"), 8.64e15, -8.64e15, 1.5]) {
    assert.equal(isoTime(ms), new Date(ms).toISOString());
  }
  assert.throws(() => isoTime(Number.NaN), RangeError);
});
