#!/usr/bin/env node
/**
 * Container health check: `node dist/cli/healthcheck.js [CONFIG]` exits 0 when the anubis
 * described by CONFIG (default: $ANUBIS_CONFIG, else /etc/anubis/anubis.yaml) is serving,
 * 1 otherwise. No curl needed in the image.
 *
 * With an `admin` listener it asks the admin API (`GET /api/pools`, with the token if one is
 * set): a 200 proves the process accepts connections and its event loop answers. Without
 * one, it opens a TCP connection to the first listener (any interface address is probed on
 * loopback). It never sends a request through the proxy, so backends see no probe traffic.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { loadConfigFile } from '../config/load.js';

const TIMEOUT_MS = 2_000;

/** The address to dial for a listen address: wildcard hosts are probed on loopback. */
function probeHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

function probeTcp(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, timeout: TIMEOUT_MS });
    socket.once('connect', () => {
      socket.destroy();
      resolve(`tcp ${host}:${port} accepts connections`);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`tcp ${host}:${port}: no answer in ${TIMEOUT_MS} ms`));
    });
    socket.once('error', reject);
  });
}

function probeAdmin(host: string, port: number, token: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        path: '/api/pools',
        timeout: TIMEOUT_MS,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      },
      (res) => {
        res.resume();
        if (res.statusCode === 200) resolve(`admin API on ${host}:${port} answers 200`);
        else reject(new Error(`admin API on ${host}:${port} answered ${res.statusCode}`));
      },
    );
    req.once('timeout', () => req.destroy(new Error(`admin API: no answer in ${TIMEOUT_MS} ms`)));
    req.once('error', reject);
    req.end();
  });
}

async function main(): Promise<string> {
  const file = process.argv[2] ?? process.env.ANUBIS_CONFIG ?? '/etc/anubis/anubis.yaml';
  const config = await loadConfigFile(file);
  if (config.admin !== undefined) {
    const { host, port } = config.admin.address;
    return probeAdmin(probeHost(host), port, config.admin.token);
  }
  const first = config.listeners[0];
  if (first === undefined) throw new Error(`${file} has no listener`);
  return probeTcp(probeHost(first.address.host), first.address.port);
}

main().then(
  (message) => {
    process.stdout.write(`healthy: ${message}\n`);
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`unhealthy: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
