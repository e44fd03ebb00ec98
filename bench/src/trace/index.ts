/** The trace format (docs/trace-format.md): parse, replay, compare, record. */
export * from './json.js';
export * from './parse.js';
export * from './names.js';
export * from './values.js';
export * from './results.js';
export * from './ops.js';
export * from './platforms.js';
export * from './replay.js';
export * from './compare.js';
export * from './writer.js';
export * from './commands.js';
export * from './corpus.js';
export * from './diff_kernel.js';
