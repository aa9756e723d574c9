/**
 * /status's flow list: a page of `dflt` connections unless asked, at most `max`. Its own file:
 * the control endpoint's clients (`ftcp status`, `ftcp gateway takeover|release` in keepalived's
 * notify hook) read it without loading the gateway (half a second of imports on a busy host,
 * on the failover's critical path).
 */
export const FLOW_PAGE = Object.freeze({ dflt: 100, max: 1000 });
