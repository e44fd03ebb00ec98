/*
 * Starts a `cocosim compare` worker thread from the TypeScript sources, for runs that are
 * themselves on the sources (vitest): the built CLI starts dist/compare/worker.js directly.
 * It installs source_loader.mjs, which maps the workspace packages to their src/ and compiles
 * each .ts file as vitest does, then imports the worker (workerData.entry).
 */
import { register } from 'node:module';
import { workerData } from 'node:worker_threads';

/*
 * The two helpers of legacy (experimentalDecorators) decorators that compiled classes call:
 * TypeScript's __decorate and __param, without the reflect-metadata branch (emitDecoratorMetadata
 * is off in tsconfig.base.json).
 */
globalThis.babelHelpers = {
  decorate(decorators, target, key, desc) {
    let r = arguments.length < 3 ? target : desc === undefined ? (desc = Object.getOwnPropertyDescriptor(target, key)) : desc;
    for (let i = decorators.length - 1; i >= 0; i--) {
      const d = decorators[i];
      if (d) r = (arguments.length < 3 ? d(r) : arguments.length > 3 ? d(target, key, r) : d(target, key)) || r;
    }
    if (arguments.length > 3 && r) Object.defineProperty(target, key, r);
    return r;
  },
  decorateParam(index, decorator) {
    return (target, key) => decorator(target, key, index);
  },
};

register('./source_loader.mjs', import.meta.url);
await import(workerData.entry);
