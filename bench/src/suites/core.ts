/**
 * core: the index structures every mechanism sits on, at the sizes a GiB of 4 KiB pages gives
 * (262144 indexes), and physical memory contents.
 */
import { MapleTree, PhysMem, Pfn, XArray } from '@cocosim/core';
import type { BenchSuite } from '../harness.js';

const NPAGES = 262144;

export const coreSuite: BenchSuite = {
  name: 'core',
  description: 'maple tree, xarray and physical memory at 1 GiB of 4 KiB pages',
  cases: [
    {
      name: 'maple_tree: store alternating attributes page by page over 1 GiB',
      prepare: () => () => {
        const mt = new MapleTree<number>();
        for (let i = 0; i < NPAGES; i++) mt.mtree_store(i, i % 2);
      },
    },
    {
      name: 'maple_tree: store one attribute page by page over 1 GiB (merges to 1 range)',
      prepare: () => () => {
        const mt = new MapleTree<number>();
        for (let i = 0; i < NPAGES; i++) mt.mtree_store(i, 1);
      },
    },
    {
      name: 'maple_tree: 1e5 lookups among 262144 ranges',
      fn: () => {
        const mt = new MapleTree<number>();
        for (let i = 0; i < NPAGES; i++) mt.mtree_store(i, i % 2);
        let x = 12345;
        return () => {
          for (let i = 0; i < 1e5; i++) {
            x = (x * 1103515245 + 12345) % 2147483648;
            mt.mtree_load(x % NPAGES);
          }
        };
      },
    },
    {
      name: 'xarray: store then erase 262144 consecutive indexes (page cache of 1 GiB)',
      prepare: () => () => {
        const xa = new XArray<number>();
        for (let i = 0; i < NPAGES; i++) xa.xa_store(i, i);
        for (let i = 0; i < NPAGES; i++) xa.xa_erase(i);
      },
    },
    {
      name: 'xarray: walk 262144 entries in order',
      fn: () => {
        const xa = new XArray<number>();
        for (let i = 0; i < NPAGES; i++) xa.xa_store(i, i);
        return () => {
          let n = 0;
          xa.xa_for_each_range(0, NPAGES - 1, () => void n++);
        };
      },
    },
    {
      name: 'phys_mem: clear 262144 pages',
      prepare: () => {
        const pm = new PhysMem(1);
        return () => {
          for (let i = 0; i < NPAGES; i++) pm.clear(Pfn(i));
        };
      },
    },
  ],
};
