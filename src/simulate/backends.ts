/**
 * Simulated backends: real node:http servers on 127.0.0.1 ephemeral ports that answer every
 * request after a delay drawn from their latency profile. Each backend has its own seeded
 * random stream, so the n-th request it receives waits the same time in every run with the
 * same seed.
 *
 * Time is counted from `begin()` (the start of a strategy's run): a phase `{ atMs, latency }`
 * changes the distribution from then on; a phase `{ atMs, down }` kills the backend: it stops
 * listening (new connections are refused) and drops its open connections, as a crashed
 * process would.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { sampleLatency } from './latency.js';
import { createRandom, deriveSeed, type Random } from './prng.js';
import type { BackendProfile, Phase } from './scenario.js';

export class SimulatedBackend {
  readonly profile: BackendProfile;
  /** Requests answered (not counting those cut when the backend died). */
  answered = 0;
  /** Requests received. */
  received = 0;
  /** True once a `down` phase has killed it. */
  dead = false;

  private readonly server: Server;
  private readonly random: Random;
  private readonly body: Buffer;
  private readonly pending = new Set<NodeJS.Timeout>();
  private startedAt = 0;
  private deathTimer: NodeJS.Timeout | undefined;
  private port = 0;

  constructor(profile: BackendProfile, seed: number, stream: number) {
    this.profile = profile;
    this.random = createRandom(deriveSeed(seed, stream));
    this.body = Buffer.from(`${profile.id}\n`);
    this.server = createServer({ keepAliveTimeout: 10_000 }, this.handle);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Starts the backend's clock: phases count from now; a `down` phase is scheduled. */
  begin(now = performance.now()): void {
    this.startedAt = now;
    const down = this.profile.phases.find((p) => 'down' in p);
    if (down !== undefined) this.deathTimer = setTimeout(this.die, down.atMs);
  }

  /** The phase in force `elapsedMs` after begin() (phases are few: a linear scan is fine). */
  private phaseAt(elapsedMs: number): Phase {
    const phases = this.profile.phases;
    for (let i = phases.length - 1; i > 0; i--) {
      if ((phases[i] as Phase).atMs <= elapsedMs) return phases[i] as Phase;
    }
    return phases[0] as Phase;
  }

  private readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.received++;
    req.resume();
    const phase = this.phaseAt(performance.now() - this.startedAt);
    // A request that arrives in the instant between the death timer and the socket close.
    if ('down' in phase) {
      res.destroy();
      return;
    }
    const delay = sampleLatency(phase.latency, this.random);
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      if (res.destroyed) return;
      this.answered++;
      res.writeHead(200, {
        'content-type': 'text/plain',
        'content-length': this.body.length,
      });
      res.end(this.body);
    }, delay);
    this.pending.add(timer);
  };

  private readonly die = (): void => {
    this.dead = true;
    this.server.close();
    this.server.closeAllConnections();
    this.clearPending();
  };

  private clearPending(): void {
    for (const timer of this.pending) clearTimeout(timer);
    this.pending.clear();
  }

  async close(): Promise<void> {
    if (this.deathTimer !== undefined) clearTimeout(this.deathTimer);
    this.clearPending();
    if (this.dead) return;
    this.dead = true;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** Starts one simulated backend per profile; stream i of the seed drives backend i. */
export async function startSimulatedBackends(
  profiles: readonly BackendProfile[],
  seed: number,
): Promise<SimulatedBackend[]> {
  const backends = profiles.map((profile, i) => new SimulatedBackend(profile, seed, i + 1));
  try {
    for (const backend of backends) await backend.listen();
  } catch (error) {
    await Promise.all(backends.map((b) => b.close()));
    throw error;
  }
  return backends;
}
