// examples/kubernetes, without a cluster: every manifest parses, selectors match their pod
// templates, the ConfigMap holds a valid anubis configuration whose backends are the headless
// Service's DNS name on the port it exposes, and probes name ports that exist.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { parseYaml, validateConfig } from '../../src/config/load.js';
import { discoveryFor } from '../../src/discovery/start.js';

const DIR = fileURLToPath(new URL('../../examples/kubernetes/', import.meta.url));

interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  resources?: string[];
}

function manifests(): Manifest[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => {
        assert.deepEqual(d.errors, [], `${f} parses`);
        return d.toJS() as Manifest;
      }),
    );
}

function find(all: Manifest[], kind: string, name: string): Manifest {
  const found = all.find((m) => m.kind === kind && m.metadata.name === name);
  assert.ok(found !== undefined, `${kind}/${name} exists`);
  return found;
}

interface PodSpec {
  containers: { args: string[]; ports: { name: string; containerPort: number }[] }[];
}
interface DeploymentSpec {
  replicas: number;
  selector: { matchLabels: Record<string, string> };
  template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
}
interface ServiceSpec {
  clusterIP?: string;
  selector: Record<string, string>;
  ports: { name: string; port: number; targetPort: string }[];
}

void test('kustomization lists every manifest file, all in one namespace', () => {
  const kustomization = parseYaml(
    readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'),
    'k',
  ) as Manifest;
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  assert.deepEqual([...(kustomization.resources ?? [])].sort(), files.sort());
  const namespaced = manifests().filter((m) => m.kind !== 'Namespace');
  assert.ok(namespaced.every((m) => m.metadata.namespace === 'anubis-demo'));
});

void test('deployments and services agree: selectors, named ports, several anubis replicas', () => {
  const all = manifests();
  for (const name of ['hello', 'anubis']) {
    const deployment = find(all, 'Deployment', name).spec as unknown as DeploymentSpec;
    const service = find(all, 'Service', name).spec as unknown as ServiceSpec;
    const labels = deployment.template.metadata.labels;
    for (const [k, v] of Object.entries(deployment.selector.matchLabels))
      assert.equal(labels[k], v);
    for (const [k, v] of Object.entries(service.selector))
      assert.equal(labels[k], v, `${name} Service selects its pods`);
    const ports = deployment.template.spec.containers[0]?.ports.map((p) => p.name) ?? [];
    for (const port of service.ports)
      assert.ok(ports.includes(port.targetPort), `${name} port ${port.targetPort}`);
  }
  const anubis = find(all, 'Deployment', 'anubis').spec as unknown as DeploymentSpec;
  assert.ok(anubis.replicas >= 2, 'several anubis replicas');
  const hello = find(all, 'Service', 'hello').spec as unknown as ServiceSpec;
  assert.equal(hello.clusterIP, 'None', 'the backends Service is headless');
});

void test("the ConfigMap's anubis.yaml is valid and discovers the headless Service by DNS", () => {
  const all = manifests();
  const text = find(all, 'ConfigMap', 'anubis-config').data?.['anubis.yaml'];
  assert.ok(text !== undefined);
  const config = validateConfig(
    parseYaml(text, 'ConfigMap anubis-config'),
    'ConfigMap anubis-config',
  );
  const backend = config.pools.hello?.backends[0];
  assert.ok(backend !== undefined);
  const hello = find(all, 'Service', 'hello');
  const url = new URL(backend.url);
  assert.equal(
    url.hostname,
    `${hello.metadata.name}.${hello.metadata.namespace}.svc.cluster.local`,
  );
  assert.equal(Number(url.port), (hello.spec as unknown as ServiceSpec).ports[0]?.port);
  assert.equal(discoveryFor(backend)?.type, 'dns');
  const listenPort = config.listeners[0]?.address.port;
  const container = (find(all, 'Deployment', 'anubis').spec as unknown as DeploymentSpec).template
    .spec.containers[0];
  assert.equal(container?.ports.find((p) => p.name === 'http')?.containerPort, listenPort);
  assert.deepEqual(container?.args, ['--config', '/etc/anubis/anubis.yaml']);
});
