import type { BenchSuite } from '../harness.js';
import { coreSuite } from './core.js';
import { mmSuite } from './mm.js';

/** Every benchmark suite, by the name `npm run bench -- NAME` takes. */
export const SUITES: readonly BenchSuite[] = [coreSuite, mmSuite];
