/**
 * A worker thread of `cocosim compare --jobs N`: imports the modules that register extra
 * scenarios or requirements (workerData.modules), then runs each cell the pool sends and posts
 * its output back. A null message ends it.
 */
import 'reflect-metadata';
import { parentPort, workerData } from 'node:worker_threads';
import { runCell, type CellRunOptions } from './cell.js';
import type { CellSpec } from './matrix.js';

export interface WorkerInit {
  /** URLs of modules to import first (they register scenarios, requirements, rules). */
  readonly modules: readonly string[];
  readonly cell: CellRunOptions;
}

const init = workerData as WorkerInit;
for (const m of init.modules) await import(m);
const port = parentPort!;
port.on('message', (spec: CellSpec | null) => {
  if (spec === null) {
    port.close();
    return;
  }
  port.postMessage(runCell(spec, init.cell));
});
