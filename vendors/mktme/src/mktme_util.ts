/**
 * Test and bench helpers: a host with MKTME (mm, the MKTME hardware, KVM with mktme_x86_ops).
 */
import { createRootContainer, type HostOptions } from '@cocosim/core';
import { Kernel, mmRegistrar } from '@cocosim/mm';
import { kvmRegistrar } from '@cocosim/kvm';
import { mktme_define_costs } from './costs.js';
import { mktme_platform_init, type MktmePlatform, type MktmePlatformOptions } from './mktme.js';
import { mktme_x86_ops } from './mktme_kvm.js';

export interface MktmeHost {
  readonly container: ReturnType<typeof createRootContainer>;
  readonly kernel: Kernel;
  readonly mktme: MktmePlatform;
}

export function mktme_host(opts: HostOptions & { nr_pages?: number; platform?: MktmePlatformOptions } = {}): MktmeHost {
  let mktme: MktmePlatform | undefined;
  const container = createRootContainer(
    opts,
    mmRegistrar({ nr_pages: opts.nr_pages ?? 2 ** 16 }),
    (root) => {
      const kernel = root.resolve(Kernel);
      mktme_define_costs(kernel.cost);
      mktme = mktme_platform_init(kernel, opts.platform);
    },
    kvmRegistrar({ x86_ops: mktme_x86_ops }),
  );
  return { container, kernel: container.resolve(Kernel), mktme: mktme! };
}
