/**
 * The progress bar of `cocosim compare` on stderr: drawn only when stderr is a terminal, and only
 * once the run has lasted a second (a quick run prints nothing), redrawn at most ten times a
 * second, and erased when the run ends so that the report starts on a clean line.
 */
import { performance } from 'node:perf_hooks';

export interface ProgressStream {
  readonly isTTY?: boolean;
  write(s: string): unknown;
}

export class Progress {
  private readonly t0: number;
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly total: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.t0 = now();
  }

  /** `done` cells of `total` finished, the last one `label`. */
  update(done: number, label: string): void {
    if (this.stream.isTTY !== true) return;
    const t = this.now();
    if (t - this.t0 < 1000 || (t - this.lastDraw < 100 && done < this.total)) return;
    this.lastDraw = t;
    const width = 30;
    const filled = this.total === 0 ? width : Math.round((width * done) / this.total);
    const secs = ((t - this.t0) / 1000).toFixed(1);
    this.stream.write(`\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total} cells ${secs} s  ${label.slice(0, 60)}`);
    this.drawn = true;
  }

  /** Erase the bar, if one was drawn. */
  done(): void {
    if (this.drawn) this.stream.write('\r\x1b[2K');
    this.drawn = false;
  }
}
