/**
 * Memory: a 1 GiB body streamed through anubis in each direction (peak RSS of the anubis
 * process during the transfer: /proc/PID/status VmHWM, reset before each transfer), and
 * 10,000 idle keep-alive client connections held open (RSS growth per connection, VmRSS
 * before and after).
 *
 * The first requests make V8 recompile undici's HTTP parser (llhttp, WebAssembly) with
 * TurboFan on a background thread, which takes ≈ 38 MiB of compiler memory for ≈ 0.1 s
 * (docs/performance.md, Memory). It happens once per process whatever the traffic, so the
 * warm-up is followed by a pause for it to finish, its peak is reported apart (start-up peak),
 * and the peak high-water mark is reset (`/proc/PID/clear_refs`, 5) before each transfer.
 */
import { request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import {
  HAPROXY,
  HAPROXY_MAXCONN,
  NGINX,
  startAnubis,
  startHaproxy,
  startNginxProxy,
  startNodeBackends,
  type BenchContext,
  type RunningPeer,
} from '../lib/peers.js';
import { childPids, readProcMemory } from '../lib/procs.js';

const GiB = 1 << 30;

export interface StreamResult {
  readonly direction: 'download' | 'upload';
  readonly bytes: number;
  readonly seconds: number;
  readonly mbps: number;
  /** VmRSS of anubis before the transfer, MiB. */
  readonly rssBeforeMiB: number;
  /** VmHWM of anubis after the transfer, MiB: the peak during the transfer. */
  readonly peakRssMiB: number;
  /** VmHWM before the reset, MiB: start-up and warm-up (and any earlier transfer). */
  readonly startupPeakRssMiB: number;
  /** False when VmHWM could not be reset: peakRssMiB is then the peak over the process's life. */
  readonly peakReset: boolean;
}

export interface IdleResult {
  readonly peer: string;
  readonly requested: number;
  /** Connections still open when RSS was read (anubis may close idle ones after its timeout). */
  readonly open: number;
  readonly rssBeforeMiB: number;
  readonly rssAfterMiB: number;
  readonly bytesPerConnection: number;
  readonly fdLimit: number;
  readonly seconds: number;
}

const mib = (kib: number | undefined): number => (kib === undefined ? Number.NaN : kib / 1024);

/** Resets the VmHWM of a process to its current RSS (Linux ≥ 4.0); false if not allowed. */
function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Downloads `bytes` from url, counting; resolves with the count. Bounded by timeoutMs. */
function download(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let n = 0;
      res.on('data', (chunk: Buffer) => (n += chunk.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('download timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Uploads `bytes` (one reused 64 KiB chunk, with back-pressure); resolves with the count the backend saw. */
function upload(url: string, bytes: number, timeoutMs: number): Promise<number> {
  const chunk = Buffer.alloc(64 << 10, 120);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-length': bytes, 'content-type': 'application/octet-stream' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(Number(body.trim())));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('upload timed out')));
    req.on('error', reject);
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

export async function runStream(
  ctx: BenchContext,
  log: (line: string) => void,
): Promise<StreamResult[]> {
  const backends = await startNodeBackends(ctx, [{ delayMs: 0, degraded: false }]);
  const anubis = await startAnubis(ctx, 'anubis-stream', backends.urls, { workers: 1 });
  try {
    // A few small requests so the pools and JIT are warm before the baseline is read.
    for (let i = 0; i < 20; i++) await download(`${anubis.url}/small`, 5_000);
    // The parser's background recompilation (see the header) finishes within this pause.
    await new Promise((r) => setTimeout(r, 1_500));
    const results: StreamResult[] = [];
    for (const direction of ['download', 'upload'] as const) {
      const startup = readProcMemory(anubis.proc.pid);
      const peakReset = resetPeakRss(anubis.proc.pid);
      const before = readProcMemory(anubis.proc.pid);
      const started = performance.now();
      const bytes =
        direction === 'download'
          ? await download(`${anubis.url}/stream?bytes=${GiB}`, 120_000)
          : await upload(`${anubis.url}/sink`, GiB, 120_000);
      const seconds = (performance.now() - started) / 1_000;
      const after = readProcMemory(anubis.proc.pid);
      if (bytes !== GiB) throw new Error(`${direction}: ${bytes} bytes arrived, expected ${GiB}`);
      const result: StreamResult = {
        direction,
        bytes,
        seconds,
        mbps: bytes / seconds / 1e6,
        rssBeforeMiB: mib(before?.rssKiB),
        peakRssMiB: mib(after?.hwmKiB),
        startupPeakRssMiB: mib(startup?.hwmKiB),
        peakReset,
      };
      log(
        `stream 1 GiB ${direction}: ${result.mbps.toFixed(0)} MB/s, RSS before ${result.rssBeforeMiB.toFixed(1)} MiB, peak ${result.peakRssMiB.toFixed(1)} MiB${peakReset ? '' : ' (VmHWM not reset: peak over the process life)'}, earlier peak ${result.startupPeakRssMiB.toFixed(1)} MiB`,
      );
      results.push(result);
    }
    return results;
  } finally {
    await anubis.proc.stop();
    await backends.proc.stop();
  }
}

/** Soft and hard limits on open files of this process (from /proc/self/limits). */
export function openFileLimits(): { soft: number; hard: number } {
  try {
    const line = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(
      readFileSync('/proc/self/limits', 'utf8'),
    );
    const value = (v: string | undefined): number =>
      v === undefined || v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v);
    return { soft: value(line?.[1]), hard: value(line?.[2]) };
  } catch {
    return { soft: Number.NaN, hard: Number.NaN };
  }
}

/** Opens one connection, sends one keep-alive GET, resolves once the answer is complete. */
function openIdle(port: number, sockets: Socket[], closed: { count: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let seen = '';
    const onData = (d: Buffer): void => {
      seen += d.toString('latin1');
      if (seen.endsWith('hello world\n')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('connect', () => {
      socket.write('GET /small HTTP/1.1\r\nHost: bench\r\n\r\n');
    });
    socket.once('error', reject);
    socket.once('close', () => closed.count++);
    socket.setTimeout(15_000, () => socket.destroy(new Error('idle connection setup timed out')));
    sockets.push(socket);
  });
}

/** Holds `requested` idle keep-alive connections to `port`; RSS is read from `pid()`. */
async function measureIdle(
  peer: string,
  port: number,
  pid: () => number | undefined,
  requested: number,
  fdLimit: number,
  log: (line: string) => void,
): Promise<IdleResult> {
  const sockets: Socket[] = [];
  const closed = { count: 0 };
  try {
    // Warm-up with the same request path, so the baseline includes JIT and pools.
    for (let i = 0; i < 200; i++) await openIdle(port, sockets, closed);
    for (const s of sockets.splice(0)) s.destroy();
    await new Promise((r) => setTimeout(r, 500));
    closed.count = 0;
    const measured = pid();
    const before = measured === undefined ? undefined : readProcMemory(measured);
    const started = performance.now();
    const concurrency = 256;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < requested) {
        next++;
        await openIdle(port, sockets, closed);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const seconds = (performance.now() - started) / 1_000;
    await new Promise((r) => setTimeout(r, 300));
    const after = measured === undefined ? undefined : readProcMemory(measured);
    const open = requested - closed.count;
    const bytesPerConnection =
      before !== undefined && after !== undefined && open > 0
        ? ((after.rssKiB - before.rssKiB) * 1024) / open
        : Number.NaN;
    const result: IdleResult = {
      peer,
      requested,
      open,
      rssBeforeMiB: mib(before?.rssKiB),
      rssAfterMiB: mib(after?.rssKiB),
      bytesPerConnection,
      fdLimit,
      seconds,
    };
    log(
      `idle ${peer}: ${open} of ${requested} connections open after ${seconds.toFixed(1)} s; RSS ${result.rssBeforeMiB.toFixed(1)} → ${result.rssAfterMiB.toFixed(1)} MiB = ${(bytesPerConnection / 1024).toFixed(1)} KiB per connection`,
    );
    return result;
  } finally {
    for (const s of sockets) s.destroy();
  }
}

/**
 * Idle keep-alive connections held through anubis (1 worker), and for comparison through
 * nginx (its worker process) and HAProxy when installed. HAProxy is capped below its
 * `maxconn` (which the open-file limit bounds).
 */
export async function runIdle(
  ctx: BenchContext,
  count: number,
  log: (line: string) => void,
): Promise<IdleResult[]> {
  // Node raises its soft open-file limit to the hard one at start-up (and anubis inherits
  // it), so the hard limit is what bounds the count; it is reported when too low.
  const fdLimit = openFileLimits().soft;
  // This process holds the client ends: keep 200 descriptors for everything else.
  const requested = Math.max(0, Math.min(count, fdLimit - 200));
  if (requested < count) {
    log(`idle: open-file limit ${fdLimit} allows ${requested} of ${count} connections`);
  }
  const backends = await startNodeBackends(ctx, [{ delayMs: 0, degraded: false }]);
  const results: IdleResult[] = [];
  try {
    const peers: {
      start: () => Promise<RunningPeer>;
      pid: (p: RunningPeer) => number | undefined;
      cap: number;
    }[] = [
      {
        start: () => startAnubis(ctx, 'anubis 1 worker', backends.urls, { workers: 1 }),
        pid: (p) => p.proc.pid,
        cap: requested,
      },
    ];
    if (NGINX !== undefined) {
      peers.push({
        start: () => startNginxProxy(ctx, 'nginx 1 worker', backends.urls, ''),
        pid: (p) => childPids(p.proc.pid)[0],
        cap: requested,
      });
    }
    if (HAPROXY !== undefined) {
      peers.push({
        start: () => startHaproxy(ctx, 'haproxy 1 thread', backends.urls, 'roundrobin'),
        pid: (p) => p.proc.pid,
        cap: Math.min(requested, HAPROXY_MAXCONN - 500),
      });
    }
    for (const spec of peers) {
      const peer = await spec.start();
      try {
        const port = Number(new URL(peer.url).port);
        results.push(
          await measureIdle(peer.name, port, () => spec.pid(peer), spec.cap, fdLimit, log),
        );
      } finally {
        await peer.proc.stop();
      }
    }
    return results;
  } finally {
    await backends.proc.stop();
  }
}
