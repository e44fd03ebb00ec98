/**
 * The requirements of the LKML threads as checks (issue: designs as patches, "requirements as
 * checks"), registered for every cell of the comparison: Hildenbrand's four and
 * Christopherson's rule. Imported by bench/src/scenarios/index.ts, so compare's worker threads
 * register them too.
 */
import { registerRequirement } from '../compare/requirements.js';
import { pfnOneVm } from './pfn_one_vm.js';
import { noHostAccess } from './no_host_access.js';
import { gfnPfnImmutable } from './gfn_pfn_immutable.js';
import { convertible } from './convertible.js';
import { neverPrivateAndShared } from './never_private_and_shared.js';
import { vendorIsolation } from './vendor_isolation.js';

export const REQUIREMENTS = [pfnOneVm, noHostAccess, gfnPfnImmutable, convertible, neverPrivateAndShared, vendorIsolation] as const;

for (const r of REQUIREMENTS) registerRequirement(r);
