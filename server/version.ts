/**
 * The versions this server reports. It speaks etcd 3.4's API, so it reports the etcd version
 * whose behaviour it reproduces: clients gate features on these strings.
 *
 * @module
 */

/** The etcd server version whose API and behaviour this server reproduces. */
export const serverVersion = "3.4.23";
/** The cluster version (major.minor.0), as etcd reports it. */
export const clusterVersion = "3.4.0";
/** The `/version` body. */
export const versions = { etcdserver: serverVersion, etcdcluster: clusterVersion } as const;
