/**
 * Ordering of the arena's decimal strings (`"50000"`, `"0.25"`) without converting them
 * to floating point: prices are compared digit by digit, exactly.
 */

/** Compares two non-negative plain decimal strings: negative, zero or positive like `a - b`. */
export function compareDecimal(a: string, b: string): number {
  const [ai = "", af = ""] = a.split(".");
  const [bi = "", bf = ""] = b.split(".");
  const ia = ai.replace(/^0+/, "");
  const ib = bi.replace(/^0+/, "");
  if (ia.length !== ib.length) return ia.length - ib.length;
  if (ia !== ib) return ia < ib ? -1 : 1;
  const n = Math.max(af.length, bf.length);
  const fa = af.padEnd(n, "0");
  const fb = bf.padEnd(n, "0");
  return fa === fb ? 0 : fa < fb ? -1 : 1;
}

/** Whether a decimal string is zero (`"0"`, `"0.000"`). */
export function isZero(d: string): boolean {
  return /^0*(\.0*)?$/.test(d);
}
