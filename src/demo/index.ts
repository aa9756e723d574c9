/** Demo servers and checking clients (see server.ts and client.ts; the non-deterministic ones random.ts). */
export { startDemoServer, isDemoKind, DEMO_KINDS, DETERMINISTIC_KINDS, type DemoKind, type DemoServer } from './server.js';
export {
  runDemoClient,
  ECHO_WINDOW,
  DEFAULT_BYTES,
  DEFAULT_LINES,
  DEFAULT_SEED,
  DEFAULT_TIMEOUT_MS,
  type DemoClientOptions,
  type DemoClientReport,
  type DemoConnReport,
  type DemoConnError,
} from './client.js';
export { Keystream, keystreamSha256, keystreamParams, CHUNK_BYTES } from './keystream.js';
export { KvStore } from './kv.js';
export { EchoScript, KvScript } from './scripts.js';
export { LineSplitter } from './lines.js';
export { RandomVerifier, randomReply, randomRequest, RANDOM_KINDS, RANDOM_OUTCOMES, type RandomKind, type RandomOutcome } from './random.js';
export { RandomDriver, RANDOM_WINDOW, countOutcomes } from './random-client.js';
export type { RandomConnResult } from './driver.js';
