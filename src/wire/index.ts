/** The wire layer: header offset tables and accessors, checksums, sequence arithmetic, parse/classify, reprs, rewrites, pcap. */
export * from './seq.js';
export * from './checksum.js';
export * from './addr.js';
export * from './ipv4.js';
export * from './tcp.js';
export * from './icmp.js';
export * from './tcp-options.js';
export * from './packet.js';
export * from './repr.js';
export * from './rewrite.js';
export * from './pcap.js';
