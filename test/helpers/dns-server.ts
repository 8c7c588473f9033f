/**
 * A tiny authoritative DNS server on 127.0.0.1 (UDP, ephemeral port) for discovery tests: it
 * answers A, AAAA and SRV questions from a table the test changes while anubis runs. Names
 * it has no record for get NXDOMAIN; `failing = true` makes it answer SERVFAIL to everything
 * (a broken resolver), `silent = true` makes it drop queries (a resolver that times out).
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import * as packet from 'dns-packet';

export interface SrvTarget {
  readonly target: string;
  readonly port: number;
  readonly priority?: number;
  readonly weight?: number;
}

export interface TestDnsServer {
  /** `127.0.0.1:PORT`, for Resolver.setServers() or `discovery.servers`. */
  readonly address: string;
  /** Time to live of every answer, in seconds (default 0: never cached). */
  ttl: number;
  failing: boolean;
  silent: boolean;
  /** Questions received, per `TYPE name` (e.g. `A hello.test`). */
  readonly queries: Map<string, number>;
  setA(name: string, addresses: readonly string[]): void;
  setAAAA(name: string, addresses: readonly string[]): void;
  setSRV(name: string, targets: readonly SrvTarget[]): void;
  close(): Promise<void>;
}

type Records = Map<string, packet.Answer[]>;

export async function startDnsServer(): Promise<TestDnsServer> {
  const socket: Socket = createSocket('udp4');
  const records: Records = new Map();
  const queries = new Map<string, number>();
  const key = (type: string, name: string): string => `${type} ${name.toLowerCase()}`;

  const server: TestDnsServer = {
    address: '',
    ttl: 0,
    failing: false,
    silent: false,
    queries,
    setA(name, addresses) {
      records.set(
        key('A', name),
        addresses.map((data) => ({ type: 'A', name, ttl: server.ttl, data })),
      );
    },
    setAAAA(name, addresses) {
      records.set(
        key('AAAA', name),
        addresses.map((data) => ({ type: 'AAAA', name, ttl: server.ttl, data })),
      );
    },
    setSRV(name, targets) {
      records.set(
        key('SRV', name),
        targets.map((t) => ({
          type: 'SRV',
          name,
          ttl: server.ttl,
          data: {
            target: t.target,
            port: t.port,
            priority: t.priority ?? 0,
            weight: t.weight ?? 1,
          },
        })),
      );
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };

  socket.on('message', (message, remote) => {
    if (server.silent) return;
    let query: packet.Packet;
    try {
      query = packet.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    const k = key(question.type, question.name);
    queries.set(k, (queries.get(k) ?? 0) + 1);
    const known = [...records.keys()].some((r) => r.endsWith(` ${question.name.toLowerCase()}`));
    const answers = (records.get(k) ?? []).map((a) => ({ ...a, ttl: server.ttl }));
    // rcode: 2 SERVFAIL, 3 NXDOMAIN (name unknown), 0 with no answers = NODATA.
    const rcode = server.failing ? 2 : known ? 0 : 3;
    const response = packet.encode({
      id: query.id,
      type: 'response',
      flags: packet.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & packet.RECURSION_DESIRED) | rcode,
      questions: query.questions,
      answers: server.failing ? [] : answers,
    });
    socket.send(response, remote.port, remote.address);
  });

  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  Object.assign(server, { address: `127.0.0.1:${port}` });
  return server;
}
