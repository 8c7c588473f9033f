/**
 * Node peer: http-proxy (node-http-proxy) over node:http with a keep-alive Agent.
 * argv: port, backend origin.
 */
import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';

const port = Number(process.argv[2]);
const target = process.argv[3] as string;
const proxy = httpProxy.createProxyServer({
  target,
  xfwd: true,
  agent: new Agent({ keepAlive: true, maxSockets: 256 }),
});
proxy.on('error', (_error, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});
createServer((req, res) => proxy.web(req, res)).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
