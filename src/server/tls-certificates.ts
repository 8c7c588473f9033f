/**
 * The certificates of a TLS listener: PEM files read asynchronously, turned into secure
 * contexts, and chosen per connection by SNI. `reload()` reads the files again and swaps the
 * contexts in one step: connections already open keep the context they started with, new
 * handshakes use the new one, nothing is dropped. If any file fails, the old certificates stay.
 *
 * SNI matching: an exact name first, then a wildcard `*.example.com` (one label, as in RFC
 * 6125 §6.4.3), else the default certificate (`cert`/`key`, or the first of `certificates`).
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { Config } from '../config/schema.js';
import { formatPath } from '../config/key-path.js';
import { readPemFile } from '../config/tls-files.js';
import { TlsFileError } from '../errors.js';

export type ListenerTlsConfig = NonNullable<Config['listeners'][number]['tls']>;

/** One certificate after loading: its PEM and the names it serves. */
interface LoadedCertificate {
  readonly cert: string;
  readonly key: string;
  readonly names: readonly string[];
}

/** Everything a handshake needs, swapped as a whole on reload. */
export interface CertificateSet {
  /** Options of the default context (server.setSecureContext / createSecureServer). */
  readonly defaults: SecureContextOptions;
  /** Lower-case exact names → context. */
  readonly exact: ReadonlyMap<string, SecureContext>;
  /** Lower-case parent domain of `*.parent` names → context. */
  readonly wildcard: ReadonlyMap<string, SecureContext>;
  /** Names served, for logs ("example.com, *.example.org"). */
  readonly names: readonly string[];
}

/** DNS names a certificate is valid for: its subjectAltName DNS entries, else its CN. */
export function certificateNames(pem: string): string[] {
  const cert = new X509Certificate(pem);
  const names: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(',')) {
    const trimmed = entry.trim();
    if (trimmed.startsWith('DNS:')) names.push(trimmed.slice(4).toLowerCase());
  }
  if (names.length > 0) return names;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn === undefined ? [] : [cn.trim().toLowerCase()];
}

async function loadCertificate(
  cert: string,
  key: string,
  servername: string | string[] | undefined,
  path: (string | number)[],
  baseDir: string,
): Promise<LoadedCertificate> {
  const [certPem, keyPem] = await Promise.all([
    readPemFile(cert, formatPath([...path, 'cert']), baseDir),
    readPemFile(key, formatPath([...path, 'key']), baseDir),
  ]);
  let names: string[];
  try {
    names =
      servername === undefined
        ? certificateNames(certPem)
        : (Array.isArray(servername) ? servername : [servername]).map((n) => n.toLowerCase());
  } catch (error) {
    throw new TlsFileError(
      formatPath([...path, 'cert']),
      cert,
      `not a valid certificate (${String(error)})`,
      error,
    );
  }
  try {
    // Fails now, with the key path, if the key does not match the certificate.
    createSecureContext({ cert: certPem, key: keyPem });
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new TlsFileError(
      formatPath([...path, 'key']),
      key,
      `cannot use this key with ${cert}: ${detail}`,
      error,
    );
  }
  return { cert: certPem, key: keyPem, names };
}

/**
 * Reads a listener's certificates (`listenerIndex` names it in errors, e.g.
 * `listeners[2].tls.certificates[0].key`) and builds the contexts.
 */
export async function loadCertificateSet(
  tls: ListenerTlsConfig,
  listenerIndex: number,
  baseDir: string,
): Promise<CertificateSet> {
  const base = ['listeners', listenerIndex, 'tls'];
  const loading: Promise<LoadedCertificate>[] = [];
  if (tls.cert !== undefined && tls.key !== undefined) {
    loading.push(loadCertificate(tls.cert, tls.key, undefined, base, baseDir));
  }
  for (const [index, entry] of (tls.certificates ?? []).entries()) {
    loading.push(
      loadCertificate(
        entry.cert,
        entry.key,
        entry.servername,
        [...base, 'certificates', index],
        baseDir,
      ),
    );
  }
  const loaded = await Promise.all(loading);
  const first = loaded[0];
  if (first === undefined)
    throw new TlsFileError(formatPath(base), '-', 'no certificate configured');
  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  const names: string[] = [];
  for (const certificate of loaded) {
    const context = createSecureContext({
      cert: certificate.cert,
      key: certificate.key,
      minVersion: tls.minVersion,
    });
    for (const name of certificate.names) {
      // The first certificate listed for a name wins.
      if (name.startsWith('*.')) {
        if (!wildcard.has(name.slice(2))) wildcard.set(name.slice(2), context);
      } else if (!exact.has(name)) exact.set(name, context);
      names.push(name);
    }
  }
  return {
    defaults: { cert: first.cert, key: first.key, minVersion: tls.minVersion },
    exact,
    wildcard,
    names,
  };
}

/** The context for an SNI name, or undefined for the default certificate. */
export function contextForName(set: CertificateSet, servername: string): SecureContext | undefined {
  const name = servername.toLowerCase();
  const exact = set.exact.get(name);
  if (exact !== undefined) return exact;
  const dot = name.indexOf('.');
  return dot > 0 ? set.wildcard.get(name.slice(dot + 1)) : undefined;
}

/** The minimal surface of a TLS server that certificates are installed on. */
export interface SecureContextHolder {
  setSecureContext(options: SecureContextOptions): void;
}

/**
 * A listener's live certificates: the SNI callback reads the current set; `reload()` swaps
 * it (and the server's default context) once every file of the new set has loaded.
 */
export class ListenerCertificates {
  private current: CertificateSet;
  private readonly listenerIndex: number;

  constructor(initial: CertificateSet, listenerIndex: number) {
    this.current = initial;
    this.listenerIndex = listenerIndex;
  }

  /** Names served, for logs. */
  get names(): readonly string[] {
    return this.current.names;
  }

  /** Default context options, for creating the server. */
  get defaults(): SecureContextOptions {
    return this.current.defaults;
  }

  /** `SNICallback` of the TLS server. */
  readonly sniCallback = (
    servername: string,
    callback: (error: Error | null, context?: SecureContext) => void,
  ): void => {
    callback(null, contextForName(this.current, servername));
  };

  /**
   * Reads `tls` again and installs it on `server`. Rejects (keeping the old certificates) if
   * any file cannot be read or used.
   */
  async reload(
    tls: ListenerTlsConfig,
    baseDir: string,
    server: SecureContextHolder,
  ): Promise<void> {
    (await this.prepare(tls, baseDir, server))();
  }

  /**
   * Reads `tls` and returns the function that installs it (for a reload that first checks
   * everything, then commits). Rejects, changing nothing, if a file cannot be read or used.
   */
  async prepare(
    tls: ListenerTlsConfig,
    baseDir: string,
    server: SecureContextHolder,
  ): Promise<() => void> {
    const next = await loadCertificateSet(tls, this.listenerIndex, baseDir);
    return () => {
      server.setSecureContext(next.defaults);
      this.current = next;
    };
  }
}
