/** Polling in tests: for state that changes on the other side of a socket. */

/**
 * Calls `read` every 5 ms until it gives `expected` or `timeoutMs` runs out; resolves with the
 * last value read (assert on it: a timeout shows up as the wrong value, not a hang).
 */
export async function pollUntil<T>(
  read: () => T | Promise<T>,
  expected: T,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (value !== expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    value = await read();
  }
  return value;
}
