/**
 * TLS towards https:// backends: which certificate authorities to trust, whether to verify at
 * all, and the SNI name. Verification is on by default; `ca` adds authorities to Node's
 * bundled roots (it does not replace them); `insecureSkipVerify` turns verification off for
 * self-signed labs. A backend's own `tls` replaces its pool's `tls` as a whole.
 *
 * CA files are read (asynchronously) before the pools are built, so building a backend stays
 * synchronous: `readBackendTlsFiles` returns them keyed by the path as written.
 */
import { rootCertificates } from 'node:tls';
import type { BackendConfig, Config, PoolConfig } from '../config/schema.js';
import { formatPath } from '../config/key-path.js';
import { readPemFile } from '../config/tls-files.js';

/** TLS connect options for one backend (anubis's client and undici's `connect` take them). */
export interface BackendConnectTls {
  readonly ca?: string[];
  readonly rejectUnauthorized: boolean;
  readonly servername?: string;
}

/** Contents of the CA files named in the configuration, keyed by the path as written. */
export type BackendTlsFiles = ReadonlyMap<string, string>;

/** Reads every backend CA file of the configuration (each file once). */
export async function readBackendTlsFiles(
  config: Pick<Config, 'pools'>,
  baseDir: string,
): Promise<BackendTlsFiles> {
  const files = new Map<string, string>();
  const read = async (file: string | undefined, path: (string | number)[]): Promise<void> => {
    if (file === undefined || files.has(file)) return;
    files.set(file, await readPemFile(file, formatPath(path), baseDir));
  };
  for (const [name, pool] of Object.entries(config.pools)) {
    await read(pool.tls?.ca, ['pools', name, 'tls', 'ca']);
    for (const [index, backend] of pool.backends.entries()) {
      await read(backend.tls?.ca, ['pools', name, 'backends', index, 'tls', 'ca']);
    }
  }
  return files;
}

/**
 * The connect options of a backend, or undefined when the defaults apply (http://, or
 * https:// with no `tls` anywhere: verify against Node's roots).
 */
export function backendConnectTls(
  backend: BackendConfig,
  pool: PoolConfig,
  files: BackendTlsFiles,
): BackendConnectTls | undefined {
  const tls = backend.tls ?? pool.tls;
  if (tls === undefined || !backend.url.startsWith('https:')) return undefined;
  const ca = tls.ca === undefined ? undefined : files.get(tls.ca);
  if (tls.ca !== undefined && ca === undefined) {
    throw new Error(`CA file ${tls.ca} was not read before building backend ${backend.url}`);
  }
  return {
    rejectUnauthorized: !tls.insecureSkipVerify,
    ...(ca === undefined ? {} : { ca: [...rootCertificates, ca] }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
  };
}
