/**
 * Setup file of the unit project (vitest.config.ts): the process-wide pino logger
 * (src/util/logger.ts, used by whatever a test builds without passing its own logger: log
 * clients and servers, link endpoints, the oracle) runs at TEST_LOG_LEVEL, silent unless
 * FTCP_TEST_LOG asks. It runs before each test file imports anything, so the children
 * modules make of the logger inherit the level.
 *
 * The environment is left alone on purpose: a CLI a test spawns logs as it does in
 * production, and tests that read that stderr keep reading it.
 */
import { logger } from '../../src/util/logger.js';
import { TEST_LOG_LEVEL } from './test-logger.js';

logger.level = TEST_LOG_LEVEL;
