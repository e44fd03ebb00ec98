export * from './uapi.js';
export * from './kvm_main.js';
export * from './kvm.js';
