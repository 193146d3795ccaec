/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the write-ahead log.
 * It sits on the write hot path (every WAL record is summed), so it processes eight bytes per
 * step with eight lookup tables ("slicing-by-8") instead of one byte per step.
 *
 * @module
 */

const POLY = 0x82f63b78;

/**
 * Eight 256-entry tables in one array: table k maps a byte to the CRC of that byte followed by
 * k zero bytes. Int32 storage keeps every value a small integer for V8 (Uint32 values above
 * 2^31 would become heap doubles).
 */
const TABLES: Int32Array = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * Returns the CRC-32C of `data` as an unsigned 32-bit number. `seed` is the CRC of the bytes
 * that came before, so sums chain: `crc32c(b, crc32c(a))` equals the CRC of `a` followed by `b`.
 */
export function crc32c(data: Uint8Array, seed = 0): number {
  const t = TABLES;
  let crc = ~seed | 0;
  let i = 0;
  const n = data.length;
  const end8 = n - (n & 7);
  for (; i < end8; i += 8) {
    const lo = crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    crc = t[1792 + (lo & 0xff)] ^ t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^ t[1024 + (lo >>> 24)] ^
      t[768 + data[i + 4]] ^ t[512 + data[i + 5]] ^ t[256 + data[i + 6]] ^ t[data[i + 7]];
  }
  for (; i < n; i++) crc = t[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}
