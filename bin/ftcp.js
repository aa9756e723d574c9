#!/usr/bin/env node
// Entry point for `npx ftcp <command>`: the compiled CLI lives in dist/ (built by `npm install`).
import { main } from '../dist/cli/main.js';
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(`ftcp: ${err && err.message ? err.message : err}`); process.exitCode = 1; },
);
