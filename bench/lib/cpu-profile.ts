/** Self time by function and by area from a V8 .cpuprofile (what `node --cpu-prof` writes). */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Which part of the stack a frame belongs to, from its script URL. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'native/program';
    return 'native';
  }
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (url.includes('/node_modules/'))
    return url.replace(/.*\/node_modules\/((@[^/]+\/)?[^/]+).*/, '$1');
  if (url.includes('/src/')) return 'anubis';
  if (
    url.startsWith('node:internal/http') ||
    url.startsWith('node:_http') ||
    url.startsWith('node:http')
  )
    return 'node:http';
  if (url.startsWith('node:internal/streams') || url.startsWith('node:stream'))
    return 'node:streams';
  if (url.startsWith('node:net') || url.startsWith('node:internal/stream_base')) return 'node:net';
  if (url.startsWith('node:')) return 'node:other';
  return url;
}

/** Self time per function and per area, in ms, from a V8 .cpuprofile. */
export function summarizeProfile(profile: CpuProfile): {
  totalMs: number;
  byArea: Map<string, number>;
  byFunction: Map<string, number>;
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let totalMs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i] as number);
    const ms = (profile.timeDeltas[i] ?? 0) / 1_000;
    if (node === undefined) continue;
    totalMs += ms;
    const { functionName, url, lineNumber } = node.callFrame;
    const area = areaOf(url, functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + ms);
    const short = url.replace(/.*\/(node_modules|src)\//, '$1/');
    const key = `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
  }
  return { totalMs, byArea, byFunction };
}
