import { FtcpError } from '../../util/errors.js';

export async function run(_argv: string[]): Promise<number> {
  throw new FtcpError('FTCP_UNIMPLEMENTED', 'status: not built yet');
}
