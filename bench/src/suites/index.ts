import type { BenchSuite } from '../harness.js';
import { conversionSuite } from './conversion.js';
import { coreSuite } from './core.js';
import { mmSuite } from './mm.js';
import { vfioSuite } from './vfio.js';

/** Every benchmark suite, by the name `npm run bench -- NAME` takes. */
export const SUITES: readonly BenchSuite[] = [coreSuite, mmSuite, conversionSuite, vfioSuite];
