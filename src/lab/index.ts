/** The namespace lab: `ftcp lab`, the drills and the lab tests use this. */
export { labUp, labDown, labStatus, restartGateway, withLab, listLeftovers, randomLabName, listNetns, netnsPids, pidAlive, REPO_ROOT } from './lab.js';
export type { LabUpOptions, LabStatus } from './lab.js';
export { spawnIn, execIn, execCmd, type ExecResult } from './exec.js';
export {
  ADDRESSES, INTERFACES, CONTROL_PORT, LAB_CONTROL, TUN_NAME, LAB_RUN_DIR, LAB_NAME_RE,
  buildTopology, gatewayArgs, checkLabName, labNamespaces, labStateDir, parseProtectList,
} from './topology.js';
export type { LabTopology, ForwardMode, LabLogMode, LabNamespaces, LabEndpoints } from './topology.js';
export { logLoss, logPathDown, logRestart, logServerPid, gatewayKill, LOG_NETEM } from './faults.js';
export { startLogServer } from './logserver.js';
export { LOG_SERVER_PORT, logServerArgs } from './topology.js';
export { holdsVips, lastTransition, standbyNamespaces, HOST_ADDRESSES } from './standby.js';
export type { StandbyTopology, GatewayHost, HostAddresses } from './standby.js';
