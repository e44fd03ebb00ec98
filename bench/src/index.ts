export * from './host.js';
export * from './harness.js';
export { main as cocosimMain } from './cli.js';
export * from './trace/index.js';
export * from './fuzz/index.js';
