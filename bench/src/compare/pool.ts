/**
 * Running cells: in this thread, or spread over worker threads (`--jobs N`). Workers take the
 * next cell when they finish one, so a slow cell does not hold the others back; results come back
 * in completion order and the caller sorts them by index, so they are the same whatever ran where.
 * Skipped cells never reach a worker.
 */
import { Worker } from 'node:worker_threads';
import { runCell, type CellOutput, type CellRunOptions } from './cell.js';
import type { CellSpec } from './matrix.js';
import type { WorkerInit } from './worker.js';

export interface PoolOptions {
  /** Worker threads; 1 runs every cell in this thread. */
  readonly jobs: number;
  readonly cell: CellRunOptions;
  /**
   * URLs of modules each worker imports before its first cell: the modules that registered
   * scenarios, requirements or platform rules in this thread beyond the built-in ones.
   */
  readonly modules?: readonly string[];
  /** Told of each finished cell, with the number finished so far. */
  readonly onCell?: (out: CellOutput, done: number) => void;
}

/** The worker's script: dist/compare/worker.js when built, else the sources through source_worker.mjs. */
function startWorker(init: WorkerInit): Worker {
  const self = import.meta.url;
  if (self.endsWith('.ts')) {
    return new Worker(new URL('./source_worker.mjs', self), { workerData: { ...init, entry: new URL('./worker.ts', self).href } });
  }
  return new Worker(new URL('./worker.js', self), { workerData: init });
}

/** Run `cells`; the outputs are in completion order. */
export async function runCells(cells: readonly CellSpec[], opts: PoolOptions): Promise<CellOutput[]> {
  const outputs: CellOutput[] = [];
  const finish = (o: CellOutput) => {
    outputs.push(o);
    opts.onCell?.(o, outputs.length);
  };
  const queue: CellSpec[] = [];
  for (const c of cells) {
    if (c.skip !== undefined) finish(runCell(c, opts.cell));
    else queue.push(c);
  }
  const jobs = Math.min(opts.jobs, queue.length);
  if (jobs <= 1) {
    for (const c of queue) finish(runCell(c, opts.cell));
    return outputs;
  }
  const init: WorkerInit = { modules: opts.modules ?? [], cell: opts.cell };
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      const next = (w: Worker) => {
        const c = queue.shift();
        if (c === undefined) {
          w.postMessage(null);
          if (--running === 0) resolve();
          return;
        }
        w.postMessage(c);
      };
      for (let i = 0; i < jobs; i++) {
        const w = startWorker(init);
        workers.push(w);
        running++;
        w.on('message', (o: CellOutput) => {
          finish(o);
          next(w);
        });
        w.on('error', reject);
        w.on('exit', (code) => {
          if (code !== 0) reject(new Error(`compare worker exited with code ${code}`));
        });
        next(w);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return outputs;
}
