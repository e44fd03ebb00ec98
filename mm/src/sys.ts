/**
 * prctl(2) (kernel/sys.c, include/uapi/linux/prctl.h; Linux 6.18), the options memory
 * management models: PR_MCE_KILL and PR_MCE_KILL_GET, a process's machine-check kill policy
 * (memory-failure.ts task_early_kill()). Any other option is answered -EINVAL, which is what the
 * kernel gives for options it does not know.
 */
import { Errno } from '@cocosim/core';
import { int_arg, ulong_arg } from './mman.js';
import { PF_MCE_EARLY, PF_MCE_PROCESS, type Task } from './process.js';

/* include/uapi/linux/prctl.h */
export const PR_MCE_KILL = 33;
export const PR_MCE_KILL_CLEAR = 0;
export const PR_MCE_KILL_SET = 1;
export const PR_MCE_KILL_LATE = 0;
export const PR_MCE_KILL_EARLY = 1;
export const PR_MCE_KILL_DEFAULT = 2;
export const PR_MCE_KILL_GET = 34;

/**
 * SYSCALL_DEFINE5(prctl) for PR_MCE_KILL / PR_MCE_KILL_GET. The arguments are unsigned longs of
 * any JS shape (ulong_arg()); a value that is not one is -EINVAL.
 * @returns 0, the PR_MCE_KILL_GET policy, or -EINVAL.
 */
export function sys_prctl(task: Task, uoption: unknown, uarg2: unknown, uarg3: unknown, uarg4: unknown, uarg5: unknown): number {
  const option = int_arg(uoption);
  const arg2 = ulong_arg(uarg2);
  const arg3 = ulong_arg(uarg3);
  const arg4 = ulong_arg(uarg4);
  const arg5 = ulong_arg(uarg5);
  if (option === undefined || arg2 === undefined || arg3 === undefined || arg4 === undefined || arg5 === undefined) return -Errno.EINVAL;
  switch (option) {
    case PR_MCE_KILL:
      if (arg4 | arg5) return -Errno.EINVAL;
      switch (arg2) {
        case BigInt(PR_MCE_KILL_CLEAR):
          if (arg3 !== 0n) return -Errno.EINVAL;
          task.flags &= ~PF_MCE_PROCESS;
          return 0;
        case BigInt(PR_MCE_KILL_SET):
          if (arg3 === BigInt(PR_MCE_KILL_EARLY)) task.flags |= PF_MCE_PROCESS | PF_MCE_EARLY;
          else if (arg3 === BigInt(PR_MCE_KILL_LATE)) task.flags = (task.flags | PF_MCE_PROCESS) & ~PF_MCE_EARLY;
          else if (arg3 === BigInt(PR_MCE_KILL_DEFAULT)) task.flags &= ~(PF_MCE_EARLY | PF_MCE_PROCESS);
          else {
            /* the kernel has set PF_MCE_PROCESS before it looks at arg3 */
            task.flags |= PF_MCE_PROCESS;
            return -Errno.EINVAL;
          }
          return 0;
        default:
          return -Errno.EINVAL;
      }
    case PR_MCE_KILL_GET:
      if (arg2 | arg3 | arg4 | arg5) return -Errno.EINVAL;
      if (task.flags & PF_MCE_PROCESS) return task.flags & PF_MCE_EARLY ? PR_MCE_KILL_EARLY : PR_MCE_KILL_LATE;
      return PR_MCE_KILL_DEFAULT;
    default:
      return -Errno.EINVAL;
  }
}
