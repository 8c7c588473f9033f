/**
 * Node peer: fastify + @fastify/reply-from (undici Pool for one backend, undici BalancedPool
 * for several). argv: port, then backend origins.
 */
import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';

const port = Number(process.argv[2]);
const backends = process.argv.slice(3);
const app = Fastify({ logger: false, bodyLimit: 2 ** 31 });
// Pass request bodies through as streams instead of parsing them.
app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
await app.register(replyFrom, {
  base: backends.length === 1 ? (backends[0] as string) : backends,
  undici: { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 },
});
app.all('/*', (request, reply) => reply.from(request.url));
await app.listen({ port, host: '127.0.0.1' });
process.on('SIGTERM', () => process.exit(0));
