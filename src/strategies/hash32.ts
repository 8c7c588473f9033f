/**
 * A fast, allocation-free 32-bit string hash for consistent hashing: FNV-1a over the UTF-16
 * code units of `text[start, end)`, then murmur3's fmix32 finaliser so that keys differing in
 * one character land far apart on the ring (FNV-1a alone clusters short similar keys).
 */
export function hash32(text: string, start = 0, end = text.length): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
