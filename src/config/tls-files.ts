/**
 * Reads the PEM files the configuration names (listener certificates and keys, backend CAs),
 * asynchronously, at start and on reload. Relative paths resolve against the configuration
 * file's directory. Every failure names the key path and the file.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { TlsFileError } from '../errors.js';

/** Reads one PEM file; `keyPath` (e.g. `listeners[0].tls.cert`) names the setting in errors. */
export async function readPemFile(file: string, keyPath: string, baseDir: string): Promise<string> {
  const absolute = isAbsolute(file) ? file : resolve(baseDir, file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const detail =
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EACCES'
          ? 'permission denied'
          : `cannot read it (${String(error)})`;
    throw new TlsFileError(keyPath, absolute, detail, error);
  }
  if (!text.includes('-----BEGIN ')) {
    throw new TlsFileError(keyPath, absolute, 'not a PEM file (no -----BEGIN line)');
  }
  return text;
}
