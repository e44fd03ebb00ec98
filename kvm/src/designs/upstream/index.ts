/**
 * Design "upstream" (designs.md D8 and D9): guest_memfd as merged in Linux 6.8
 * (KVM_CREATE_GUEST_MEMFD, KVM_SET_USER_MEMORY_REGION2 with KVM_MEM_GUEST_MEMFD, per-VM
 * KVM_SET_MEMORY_ATTRIBUTES: private and shared memory are different pages) with 6.18's mmap()
 * flags GUEST_MEMFD_FLAG_MMAP and GUEST_MEMFD_FLAG_INIT_SHARED. It is the base kernel itself, so
 * the registrar installs no hook; it only names the platform's design.
 */
import type { HostRegistrar } from '@cocosim/core';
import { Kernel } from '@cocosim/mm';
import {
  GUEST_MEMFD_FLAG_INIT_SHARED, GUEST_MEMFD_FLAG_MMAP, KVM_CAP_GUEST_MEMFD, KVM_CAP_GUEST_MEMFD_FLAGS, KVM_CAP_MEMORY_ATTRIBUTES,
  KVM_CREATE_GUEST_MEMFD, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD, KVM_SET_MEMORY_ATTRIBUTES, KVM_SET_USER_MEMORY_REGION2,
} from '../../uapi.js';
import { design_install, type Design } from '../design.js';
import { upstream_vmm } from './vmm.js';

export * from './vmm.js';

export const upstream: Design = {
  name: 'upstream',
  title: 'guest_memfd as merged in Linux 6.8, with the 6.18 mmap() flags (the base kernel)',
  rows: ['D8', 'D9'],
  uapi: {
    KVM_CREATE_GUEST_MEMFD,
    KVM_SET_USER_MEMORY_REGION2,
    KVM_SET_MEMORY_ATTRIBUTES,
    KVM_MEM_GUEST_MEMFD,
    KVM_MEMORY_ATTRIBUTE_PRIVATE,
    GUEST_MEMFD_FLAG_MMAP,
    GUEST_MEMFD_FLAG_INIT_SHARED,
    KVM_CAP_GUEST_MEMFD,
    KVM_CAP_MEMORY_ATTRIBUTES,
    KVM_CAP_GUEST_MEMFD_FLAGS,
  },
  options: {},
  vmm: upstream_vmm,
  registrar: (): HostRegistrar => (root) => design_install(root.resolve(Kernel), upstream, {}),
};
