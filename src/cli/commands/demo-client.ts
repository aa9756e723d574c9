import { FtcpError } from '../../util/errors.js';

export async function run(_argv: string[]): Promise<number> {
  throw new FtcpError('FTCP_UNIMPLEMENTED', 'demo-client: not built yet');
}
