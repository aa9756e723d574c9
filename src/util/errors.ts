/**
 * Operational errors with stable codes (after undici's lib/core/errors.js). Bad input on
 * the command line or in a configuration is an `FtcpError`; the CLI prints its message
 * and exits non-zero. Internal invariants use `assert` instead.
 */
export class FtcpError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FtcpError';
    this.code = code;
  }
}

/** A usage error: wrong or missing command-line arguments. */
export class UsageError extends FtcpError {
  constructor(message: string) {
    super('FTCP_USAGE', message);
    this.name = 'UsageError';
  }
}

export function invariant(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`invariant violated: ${message}`);
}
