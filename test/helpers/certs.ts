/**
 * Test certificates generated at test time (the `selfsigned` dev package): a throwaway CA
 * and leaf certificates it signs, written as PEM files into a temporary directory.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

export interface CertFiles extends PemPair {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TestPki {
  readonly dir: string;
  readonly ca: CertFiles;
  /** A leaf for `names` (DNS names; IPs also accepted) signed by the CA, written as files. */
  leaf(label: string, names: readonly string[]): Promise<CertFiles>;
  /** A self-signed leaf (no CA), written as files. */
  selfSigned(label: string, names: readonly string[]): Promise<CertFiles>;
  cleanup(): Promise<void>;
}

function altNames(names: readonly string[]): { type: 2 | 7; value?: string; ip?: string }[] {
  return names.map((n) =>
    /^[\d.]+$|:/.test(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n },
  );
}

async function write(dir: string, label: string, pair: PemPair): Promise<CertFiles> {
  const certFile = join(dir, `${label}.crt`);
  const keyFile = join(dir, `${label}.key`);
  await writeFile(certFile, pair.cert);
  await writeFile(keyFile, pair.key);
  return { ...pair, certFile, keyFile };
}

export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'anubis-pki-'));
  const caResult = await generate([{ name: 'commonName', value: 'anubis test CA' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      {
        name: 'keyUsage',
        keyCertSign: true,
        cRLSign: true,
        digitalSignature: true,
        critical: true,
      },
    ],
  });
  const ca = await write(dir, 'ca', { cert: caResult.cert, key: caResult.private });
  const make = async (
    label: string,
    names: readonly string[],
    signed: boolean,
  ): Promise<CertFiles> => {
    const result = await generate([{ name: 'commonName', value: names[0] ?? label }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: altNames(names) },
      ],
      ...(signed ? { ca: { key: ca.key, cert: ca.cert } } : {}),
    });
    return write(dir, label, { cert: result.cert, key: result.private });
  };
  return {
    dir,
    ca,
    leaf: (label, names) => make(label, names, true),
    selfSigned: (label, names) => make(label, names, false),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
