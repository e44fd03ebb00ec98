/** The trace fuzzer (`cocosim fuzz`): generate, run with DEBUG_VM, minimize, save. */
export * from './generate.js';
export * from './run.js';
export * from './minimize.js';
export * from './fuzz.js';
export * from './command.js';
