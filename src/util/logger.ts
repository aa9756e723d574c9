import { pino, type Logger } from 'pino';

/** The process-wide pino logger (JSON lines on stderr; level from FTCP_LOG_LEVEL). */
export const logger: Logger = pino(
  { name: 'ftcp', level: process.env.FTCP_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: false }),
);

export type { Logger };
