/**
 * Loggers for tests: silent unless a run asks for them with FTCP_TEST_LOG=<pino level>
 * (e.g. `FTCP_TEST_LOG=debug npx vitest run --project unit test/unit/recovery`). A unit run
 * is then quiet on stderr, and the gateway's own log lines are one variable away when a
 * test needs explaining.
 */
import { pino, type Logger } from 'pino';

/** The level every test logger (and the process-wide one, see quiet-logs.ts) runs at. */
export const TEST_LOG_LEVEL = process.env.FTCP_TEST_LOG ?? 'silent';

/** A logger for a component under test, on stderr at TEST_LOG_LEVEL. */
export function testLogger(): Logger {
  return pino({ level: TEST_LOG_LEVEL });
}
