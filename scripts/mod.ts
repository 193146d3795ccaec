/**
 * Developer scripts run through `deno task`: `cluster.ts` starts a local 3-member cluster.
 *
 * @module
 */
export {
  type ClusterImpl,
  localClusterToken,
  type LocalMember,
  memberCommandLine,
  memberFlags,
  procfileMembers,
} from "./cluster.ts";
