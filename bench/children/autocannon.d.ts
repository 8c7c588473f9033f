// The part of autocannon's API the fallback load generator uses (the package ships no types).
declare module 'autocannon' {
  interface Options {
    url: string;
    connections: number;
    duration: number;
    method: string;
    headers: Record<string, string>;
    body?: Buffer;
    timeout: number;
  }
  interface Result {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    requests: { total: number };
    throughput: { total: number };
    latency: Record<string, number>;
  }
  function autocannon(options: Options): Promise<Result>;
  export default autocannon;
}
