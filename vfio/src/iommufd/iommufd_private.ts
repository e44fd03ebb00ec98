/**
 * The iommufd object model (drivers/iommu/iommufd/iommufd_private.h and the object functions of
 * main.c): the context, its table of objects, and their users counts. See main.ts.
 */
import { BUG_ON, Errno } from '@cocosim/core';
import type { File, Kernel, Task } from '@cocosim/mm';
import { IOPT_PAGES_ACCOUNT_USER } from './pages.js';

/* enum iommufd_object_type */
export const IOMMUFD_OBJ_NONE = 0;
export const IOMMUFD_OBJ_ANY = IOMMUFD_OBJ_NONE;
export const IOMMUFD_OBJ_DEVICE = 1;
export const IOMMUFD_OBJ_HWPT_PAGING = 2;
export const IOMMUFD_OBJ_HWPT_NESTED = 3;
export const IOMMUFD_OBJ_IOAS = 4;

/** struct iommufd_object: an entry of the context's table. */
export abstract class IommufdObject {
  id = 0;
  /** refcount users: 1 for the table's own reference, plus one per user. */
  users = 1;
  abstract readonly type: number;
  /** iommufd_object_ops[type].destroy. */
  abstract destroy(): void;
}

/** struct iommufd_ctx: one open /dev/iommu. */
export class IommufdCtx {
  readonly objects = new Map<number, IommufdObject>();
  /** IOMMU_OPTION_RLIMIT_MODE: IOPT_PAGES_ACCOUNT_USER (0) or IOPT_PAGES_ACCOUNT_MM (1). */
  account_mode = IOPT_PAGES_ACCOUNT_USER;
  /** The iommufd groups of the devices bound (ictx->groups, by iommu group id). */
  readonly groups = new Map<number, unknown>();
  /** The context's file: bound devices hold a reference on it (iommufd_ctx_get()). */
  file!: File;

  constructor(readonly kernel: Kernel) {}
}

/** iommufd_object_alloc() + iommufd_object_finalize(): the lowest free id from 1. */
export function iommufd_object_alloc<T extends IommufdObject>(ictx: IommufdCtx, obj: T): T {
  let id = 1;
  while (ictx.objects.has(id)) id++;
  obj.id = id;
  ictx.objects.set(id, obj);
  return obj;
}

/** iommufd_object_abort(): an object that failed to set up leaves the table without destroy. */
export function iommufd_object_abort(ictx: IommufdCtx, obj: IommufdObject): void {
  ictx.objects.delete(obj.id);
}

/** iommufd_get_object(): the object `id` if it is of `type` (IOMMUFD_OBJ_ANY: any), else -ENOENT. */
export function iommufd_get_object(ictx: IommufdCtx, id: number, type: number): IommufdObject | number {
  const obj = ictx.objects.get(id);
  if (obj === undefined || (type !== IOMMUFD_OBJ_ANY && obj.type !== type)) return -Errno.ENOENT;
  return obj;
}

/**
 * iommufd_object_remove(): destroy object `id`. With `to_destroy` the caller gives up its own
 * reference first (a device unbinding, the last device leaving an automatic HWPT). -ENOENT for
 * no such object, -EBUSY while another user holds it.
 */
export function iommufd_object_remove(ictx: IommufdCtx, to_destroy: IommufdObject | null, id: number): number {
  const obj = ictx.objects.get(id);
  if (to_destroy !== null) {
    /* If the caller is holding a ref on obj we put it here */
    BUG_ON(obj !== to_destroy, 'iommufd_object_remove() of an object not in the table');
    to_destroy.users--;
  } else if (obj === undefined) {
    return -Errno.ENOENT;
  }
  if (obj!.users !== 1) return -Errno.EBUSY;
  obj!.users = 0;
  ictx.objects.delete(id);
  obj!.destroy();
  return 0;
}

/** iommufd_object_destroy_user(): remove an object whose user (the caller) is done with it. */
export function iommufd_object_destroy_user(ictx: IommufdCtx, obj: IommufdObject): void {
  const rc = iommufd_object_remove(ictx, obj, obj.id);
  BUG_ON(rc !== 0, `iommufd_object_destroy_user(): object ${obj.id} still in use`);
}

/** The ioctl's struct once its size passed: the fields, the size the user gave, and the task. */
export interface IommufdUcmd {
  readonly ictx: IommufdCtx;
  readonly cmd: Record<string, unknown>;
  readonly user_size: number;
  readonly current: Task;
}
